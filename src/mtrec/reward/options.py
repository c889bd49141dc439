"""Options of the MTRec guidances (pydantic only: params are checked against
them at load without importing the losses; see mtrec.guidance_options)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AlignmentOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Weight of the alignment term (tune on validation; the value of params.yaml).
    beta: float = Field(0.03, ge=0.0)


class ExpectedOptions(AlignmentOptions):
    # Not tuned for this read-out yet: the value it has always trained with.
    beta: float = Field(0.1, ge=0.0)


class CVaROptions(AlignmentOptions):
    # Lower-tail CVaR level q of the reward distribution (tune on validation);
    # None = the column the read-out stored at `reward.cvar_level`.
    q: float | None = Field(None, gt=0.0, le=1.0)


class ProxyOptions(AlignmentOptions):
    # Chosen on validation NDCG_p on the simulator from {0.03, 0.3}
    # (benchmarks/results/guidance_control_sim_continuation_gru4rec.json).
    beta: float = Field(0.3, ge=0.0)
    # Pause (timestamp units) that ends a session; None = the proxies' default (3600).
    session_gap: int | None = Field(None, ge=1)
    # Pseudo-clicks at the global continuation share that an item's share is shrunk with.
    prior_count: float = Field(5.0, ge=0.0)
