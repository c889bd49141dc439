"""Training: one loop (`loop.fit`) with pluggable losses (`losses`), and the
`train_recommender` step that trains one candidate for each seed."""

from mtrec.seeding import seed_everything
from mtrec.training.loop import FitResult, TrainingStopped, fit
from mtrec.training.losses import (
    GUIDANCES,
    Loss,
    LossContext,
    TrainingClock,
    make_loss,
    register_guidance,
)
from mtrec.training.recommender import candidate_name, train_recommender

__all__ = [
    "GUIDANCES",
    "FitResult",
    "Loss",
    "LossContext",
    "TrainingClock",
    "TrainingStopped",
    "candidate_name",
    "fit",
    "make_loss",
    "register_guidance",
    "seed_everything",
    "train_recommender",
]
