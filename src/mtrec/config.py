"""Typed configuration read once from params.yaml by the entry points.

params.yaml is closed and fully typed: `Params` has one pydantic model per
section and every model rejects unknown keys, so a misspelled section, key or
guidance name fails at load (`load_params` raises `ParamsError`, one line naming
the key and the file) instead of silently falling back to a default. Library
functions receive one of these sections (or plain arguments), never a dict.

One source of truth for defaults: every field of every model here (and of each
registered guidance's options model) is written in params.yaml with a comment,
and a code default, where there is one, equals the params.yaml value
(tests/test_config.py checks both).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorConfig(StrictModel):
    """The synthetic world (mtrec.simulator): users with a hidden mental reward.

    Items have topic mixtures, a true quality and a clickbait attractiveness
    drawn independently of quality; clicks follow preference fit and clickbait,
    the mental reward after a click follows fit and quality plus item-specific
    noise; disappointment (negative reward) ends sessions earlier and lowers the
    interest in the item's topics. Read by `data.source: synthetic`.
    """

    seed: int = 7
    n_users: int = Field(1000, ge=1)
    n_items: int = Field(500, ge=2)
    n_topics: int = Field(8, ge=1)
    # Dirichlet concentration of an item's topic mixture (small: one main topic).
    topic_concentration: float = Field(0.3, gt=0)
    # Std of a user's per-topic interest; fit = interest . item topic mixture.
    preference_scale: float = Field(1.5, ge=0)
    # Lognormal sigma of a user's susceptibility to clickbait (median 1).
    susceptibility_spread: float = Field(0.5, ge=0)
    # Click logit = click_bias + click_fit_weight*fit + click_bait_weight*susceptibility*clickbait.
    click_bias: float = -1.0
    click_fit_weight: float = 1.0
    click_bait_weight: float = 1.0
    # Mental reward = reward_bias + reward_fit_weight*fit + reward_quality_weight*quality
    #                 + noise_scale_i * N(0, 1); clickbait plays no part in it.
    reward_bias: float = 0.0
    reward_fit_weight: float = 0.7
    reward_quality_weight: float = 1.0
    noise_scale: float = Field(0.3, ge=0)
    # Share of risky items and their noise scale (heavy lower tail for CVaR).
    risky_fraction: float = Field(0.2, ge=0, le=1)
    risky_noise_scale: float = Field(1.5, ge=0)
    # Watch ratio = 2*sigmoid(watch_ratio_slope*reward + watch_ratio_noise*N(0,1)).
    watch_ratio_slope: float = Field(1.5, gt=0)
    watch_ratio_noise: float = Field(0.3, ge=0)
    # Sessions: each user has this many; a session stops at max_session_length
    # exposures or when the user leaves.
    sessions_per_user: int = Field(5, ge=1)
    max_session_length: int = Field(30, ge=1)
    # Leave probability after a step: base + disappointment_leave * max(-reward, 0)
    # summed over the step's clicks (clipped to 1).
    base_leave_probability: float = Field(0.05, ge=0, le=1)
    disappointment_leave: float = Field(0.3, ge=0)
    # Interest update after a click on item i: interest -= drift_negative*max(-r,0)*topics_i,
    # interest += drift_positive*max(r,0)*topics_i; between sessions the drift
    # decays back toward the base preference by interest_recovery.
    interest_drift_negative: float = Field(0.5, ge=0)
    interest_drift_positive: float = Field(0.1, ge=0)
    interest_recovery: float = Field(0.5, ge=0, le=1)
    # Logging policy: mixture weights (normalised) of popularity, uniform random
    # and preference-aware exposure.
    logging_popularity_weight: float = Field(0.4, ge=0)
    logging_random_weight: float = Field(0.3, ge=0)
    logging_preference_weight: float = Field(0.3, ge=0)
    # Zipf-like exponent of the exposure prior used by the popularity component.
    popularity_skew: float = Field(1.0, ge=0)
    # Preference component: softmax(estimated fit / temperature), where the
    # logging system's estimate of a user's interest has this much noise.
    logging_preference_temperature: float = Field(0.5, gt=0)
    logging_preference_noise: float = Field(0.5, ge=0)
    # Where the synthetic source writes the ground truth (items' quality,
    # clickbait, noise scale, topics; users' preferences). None: not written
    # (it can always be rebuilt from this config: the world is a function of it).
    truth_path: str | None = "data/raw/simulator_truth.npz"


class OnlineConfig(StrictModel):
    """Online evaluation in the simulator (mtrec.simulator.online)."""

    seed: int = 11
    # Users of the simulated cohort: n_users of the world from first_user on
    # (None = all from first_user). Two disjoint cohorts (e.g. a validation cohort
    # that selects and a test cohort that reports) differ in first_user.
    n_users: int | None = Field(None, ge=1)
    first_user: int = Field(0, ge=0)
    sessions_per_user: int = Field(3, ge=1)
    max_session_length: int = Field(20, ge=1)
    # Items shown per step (the policy's top-k, history and this session's
    # already-shown items masked).
    slate_size: int = Field(5, ge=1)
    # Exposures under the logging policy before the policy takes over, giving
    # every user a starting positive history (identical for every policy).
    warmup_exposures: int = Field(30, ge=0)
    # Last positives passed to the policy; padding side of the history tensor.
    max_history: int = Field(50, ge=1)
    history_padding: Literal["left", "right"] = "right"
    # Confidence level and bootstrap resamples of the paired comparisons.
    confidence: float = Field(0.95, gt=0, lt=1)
    n_bootstrap: int = Field(2000, ge=100)


class ReinforceConfig(StrictModel):
    """The RL recommender trained in the simulator (mtrec.simulator.rl):
    r_final = r_env + kappa * r_mental."""

    seed: int = 0
    embedding_dim: int = Field(32, ge=1)
    max_history: int = Field(50, ge=1)
    # Environment reward per exposure: a click, or the watch ratio of a click.
    env_reward: Literal["click", "watch_ratio"] = "click"
    kappa: float = 0.2
    discount: float = Field(0.9, ge=0, le=1)
    iterations: int = Field(150, ge=1)
    users_per_iteration: int = Field(256, ge=1)
    episode_length: int = Field(20, ge=1)
    learning_rate: float = Field(0.01, gt=0)
    entropy_weight: float = Field(0.01, ge=0)


class DataConfig(StrictModel):
    """Where the raw interactions come from (stage `ingest`)."""

    source: Literal["ml-100k", "ml-1m", "kuairand", "amazon", "table", "synthetic"] = "ml-100k"
    # File (or glob, for KuaiRand's several log files) for user-supplied sources.
    path: str | None = None
    # Source `table` only: canonical column -> column in the file.
    columns: dict[str, str] = Field(default_factory=dict)
    # Source `table` only: csv field separator (parquet files ignore it).
    separator: str = ","
    # Amazon only: "csv" (user,item,rating,timestamp without header) or "jsonl".
    format: Literal["auto", "csv", "jsonl"] = "auto"
    # Source `synthetic` only: the simulated world and its logging policy.
    simulator: SimulatorConfig = SimulatorConfig()


class ValidateConfig(StrictModel):
    """Schema validation and filtering (stage `validate`)."""

    # Keep users and items with at least this many positives, iterated to a fixed
    # point (the k-core). 0 disables. Removed counts go to the report.
    k_core: int = Field(0, ge=0)
    # After filtering, every user needs this many positives (LOO needs 3).
    min_positives_per_user: int = Field(3, ge=1)
    # "fail": any failed check stops the pipeline. "quarantine": rows that fail
    # row-level checks go to a file with the reason, and the stage continues only
    # if their fraction is at most `max_rejected_fraction`.
    on_error: Literal["fail", "quarantine"] = "fail"
    max_rejected_fraction: float = Field(0.01, ge=0.0, le=1.0)
    # How many example rows per failed check the report shows.
    n_examples: int = Field(5, ge=1)


class SplitConfig(StrictModel):
    """Negative exposures and the train/valid/test split (stage `split`)."""

    method: Literal["leave_one_out", "global_time"] = "leave_one_out"
    # Sources without logged negatives: sampled never-touched items per positive.
    n_negatives: int = Field(4, ge=0)
    negative_sampling: Literal["uniform", "popularity"] = "uniform"
    seed: int = 2020
    # global_time only: fractions of the time range (by event quantile).
    valid_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    # Which positives count as satisfying, for evaluation only.
    satisfied_rating: float = 4.0
    satisfied_watch_ratio: float = 0.8
    satisfied_true_reward: float = 0.0


class Paths(StrictModel):
    """Where each stage reads and writes; relative to the project root."""

    raw: Path = Path("data/raw/exposures.parquet")
    validated: Path = Path("data/validated/exposures.parquet")
    quarantine: Path = Path("data/validated/quarantine.parquet")
    processed: Path = Path("data/processed")
    reports: Path = Path("reports")
    models: Path = Path("models")
    # Training checkpoints of the candidates (resume): no DVC output, so `dvc repro`
    # does not delete them before it reruns an interrupted stage.
    checkpoints: Path = Path(".mtrec-cache/checkpoints")
    # One folder per trained candidate <backbone>-<guidance> (what `evaluate` scores);
    # default: <models>/candidates.
    candidates: Path | None = None

    def model_post_init(self, __context) -> None:
        if self.candidates is None:
            object.__setattr__(self, "candidates", self.models / "candidates")


class GateConfig(StrictModel):
    """The offline-metric gate (stage `gate`): which candidate may become champion.

    The gate chooses on validation evidence only: each seed's chosen checkpoint
    scored on the validation split (`reports/metrics.json` -> `valid`, with the
    per-user ranks beside it). Test metrics are reported, never used to choose.
    A gain is the relative change `(candidate - reference) / |reference|`,
    sign-flipped for metrics where lower is better (`direction`), so a positive
    gain is always an improvement.
    """

    # Must beat the champion and the unguided base (mean over seeds, validation).
    primary_metric: str = "NDCG_p@10"
    # The lower bound of the paired interval of the primary's relative gain must
    # be strictly above this (0.0: the interval must exclude zero).
    min_relative_improvement: float = Field(0.0, ge=0.0)
    # Two-sided confidence level of every comparison's interval.
    confidence: float = Field(0.95, gt=0.0, lt=1.0)
    # Paired bootstrap over seeds and validation users: replicates and their seed.
    bootstrap_samples: int = Field(2000, ge=100)
    bootstrap_seed: int = 0
    # Metrics whose relative gain (point estimate, paired seeds) may not fall
    # below -guard_tolerance; their intervals are reported too.
    guard_metrics: tuple[str, ...] = ("AUC", "NDCG@10")
    guard_tolerance: float = Field(0.02, ge=0.0, le=1.0)
    # Direction of a metric the gate uses: "higher" or "lower" is better. Known
    # metrics have a built-in direction (mtrec.lifecycle.gate.metric_direction:
    # loss, HR_n@K, NDCG_n@K lower; AUC, GAUC, NCIS*, HR/NDCG/MRR@K, HR_p/NDCG_p@K,
    # dNDCG@K higher); any other metric must be declared here.
    directions: dict[str, Literal["higher", "lower"]] = Field(default_factory=dict)
    # Guidance name of the unguided base of each backbone (`<backbone>-none`).
    base_guidance: str = "none"
    # Whether the unguided base itself may be promoted (it cannot beat itself;
    # it still has to beat the champion).
    unguided_eligible: bool = True
    # What happens to the best candidate when it fails: registered under the
    # `challenger` alias, or not registered at all.
    on_fail: Literal["challenger", "nothing"] = "challenger"


class TrackingConfig(StrictModel):
    """MLflow tracking and registry (stages `gate` and `package`)."""

    # None: $MLFLOW_TRACKING_URI if set, else sqlite:///mlflow.db in the project root.
    tracking_uri: str | None = None
    experiment: str = "mtrec"
    registered_model: str = "mtrec-recommender"
    # Log every seed's model (True) or only the registered one (False).
    log_all_seeds: bool = False


# --- Recommender backbones (owned by the models area; read by mtrec.models) ---


class SASRecConfig(StrictModel):
    """Causal self-attention over the positive history (Kang & McAuley 2018)."""

    kind: Literal["sasrec"] = "sasrec"
    # Longest positive history a state sees (the last `max_history` positives).
    max_history: int = Field(50, ge=1)
    dim: int = Field(64, ge=1)
    n_layers: int = Field(2, ge=1)
    n_heads: int = Field(2, ge=1)
    ffn_dim: int = Field(256, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class GRU4RecConfig(StrictModel):
    """A GRU over the positive history (Hidasi et al. 2016)."""

    kind: Literal["gru4rec"] = "gru4rec"
    max_history: int = Field(50, ge=1)
    dim: int = Field(64, ge=1)
    hidden_dim: int = Field(128, ge=1)
    n_layers: int = Field(1, ge=1)
    dropout: float = Field(0.3, ge=0.0, lt=1.0)


class DINConfig(StrictModel):
    """Target attention over the history with an MLP head (Zhou et al. 2018)."""

    kind: Literal["din"] = "din"
    max_history: int = Field(50, ge=1)
    dim: int = Field(64, ge=1)
    attention_hidden: int = Field(36, ge=1)
    mlp_hidden: tuple[int, ...] = (200, 80)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # Items scored per chunk in full-catalogue scoring (memory vs speed).
    score_chunk: int = Field(256, ge=1)
    # Two-stage scoring: 0 scores every item with target attention; K > 0 lets a
    # co-visitation candidate stage (mtrec.models.candidates, fitted on the train
    # positives) pick K items per user and DIN re-rank only those; every other
    # item scores -inf (ranked below all candidates). Evaluation, the online
    # simulation and serving all go through score_all, so all of them use it.
    candidates: int = Field(0, ge=0)
    # Neighbours each item keeps in the candidate stage's table.
    candidate_neighbours: int = Field(100, ge=1)


ModelConfig = Annotated[SASRecConfig | GRU4RecConfig | DINConfig, Field(discriminator="kind")]


class FlowConfig(StrictModel):
    """How the Prefect flow (flows/pipeline.py) runs the steps."""

    # How independent dvc.yaml stages (the candidate matrix) run: "thread"
    # (up to max_workers at once) or "sequential". Each stage is a subprocess.
    task_runner: Literal["thread", "sequential"] = "thread"
    max_workers: int = Field(2, ge=1)
    # Stages whose failures are I/O (reading the source, the Bento store): only
    # these are retried.
    io_stages: tuple[str, ...] = ("ingest", "package")
    io_retries: int = Field(2, ge=0)
    io_retry_delay_seconds: float = Field(2.0, ge=0.0)


class PackageConfig(StrictModel):
    """The Bento build of the champion (stage `package`)."""

    # Name of the Bento model (the champion's weights) and of the Bento service.
    bento_model: str = "mtrec-recommender"
    # Registry alias to package.
    alias: str = "champion"
    # None: $BENTOML_HOME, else BentoML's default (~/bentoml).
    bentoml_home: str | None = None
    # Requests above these limits are rejected with 4xx by the service.
    max_history: int = Field(200, ge=1)
    max_items_per_request: int = Field(1000, ge=1)


# --- The mental reward model (owned by the reward area; read by mtrec.reward) ---


class RewardEncoders(StrictModel):
    """The reward model's encoder per backbone kind: the reward model that guides a
    `<kind>` recommender has a `<kind>` encoder of these sizes (smaller than the
    recommender's own). A kind written with only some keys takes the others from
    its config class (e.g. `GRU4RecConfig`), as the untyped mapping did."""

    sasrec: SASRecConfig = SASRecConfig(
        max_history=20, dim=32, n_layers=1, n_heads=1, ffn_dim=64, dropout=0.1
    )
    gru4rec: GRU4RecConfig = GRU4RecConfig(
        max_history=20, dim=32, hidden_dim=64, n_layers=1, dropout=0.1
    )
    din: DINConfig = DINConfig(
        max_history=20, dim=32, attention_hidden=36, mlp_hidden=(64, 32), dropout=0.1
    )

    def of(self, kind: str) -> SASRecConfig | GRU4RecConfig | DINConfig:
        return getattr(self, kind)


class RewardConfig(StrictModel):
    """QR-IQL mental reward model (stage `train_reward`) and its read-out (METHOD.md §2)."""

    # Encoder of one reward model (sasrec, gru4rec, din): the recommender it guides
    # has the same architecture. The pipeline trains one reward model per backbone
    # of `recommender.backbones`, resolved by `for_backbone` from `encoders`.
    backbone: ModelConfig = Field(default_factory=SASRecConfig)
    # Sizes of the reward model's encoder per backbone kind (that kind's config).
    encoders: RewardEncoders = Field(default_factory=lambda: RewardEncoders())
    # "qr-iql": N quantiles, quantile-Huber TD term; "iq-learn": the "-IRL" ablation
    # (N must be 1; squared chi^2 TD term).
    objective: Literal["qr-iql", "iq-learn"] = "qr-iql"
    # `mtrec train-reward` also trains the -IRL ablation (same keys, N = 1, chi^2)
    # whose rewards the `irl` guidance reads (columns prefixed `irl_`).
    irl_ablation: bool = False
    # Quantile locations per action (N); tau_k = (2k - 1) / 2N.
    n_quantiles: int = Field(10, ge=1)
    # A pause longer than this (timestamp units) after an exposure makes it terminal
    # (the user left); null: only a user's last exposure is terminal.
    session_gap: int | None = Field(None, ge=0)
    # The leave-aware MDP: the user's response is a click or skip *and* staying or
    # leaving the session afterwards (four joint actions; leaving is terminal), so
    # the choice to go on after a click, made once its outcome is known, is
    # explained by the reward too (docs/REWARD.md). Sessions end at session_gap
    # (3600 when null). false: the two-action MDP of METHOD.md section 1.
    leave_action: bool = False
    # chi^2 regulariser strength (psi(x) = x - x^2 / 4 alpha) and discount.
    alpha: float = Field(0.5, gt=0.0)
    gamma: float = Field(0.9, ge=0.0, lt=1.0)
    # Quantile Huber threshold (QR-DQN uses 1).
    huber_kappa: float = Field(1.0, gt=0.0)
    # TD target V(s'): "gradient" flows through it (IQ-Learn's own objective, whose
    # validation value then means something), "stop_gradient" detaches it, "polyak"
    # takes it from a slowly updated copy. Measured on the simulator (3 seeds):
    # gradient recovers the true reward best; the semi-gradient losses climb.
    target: Literal["gradient", "stop_gradient", "polyak"] = "gradient"
    # Polyak step: target <- (1 - rate) * target + rate * online, after every update.
    polyak_rate: float = Field(0.01, gt=0.0, le=1.0)
    # Weight of a behaviour term added to the objective: the negative log-likelihood
    # of the logged actions under the soft-Q policy softmax_a Q(s, a). 0: QR-IQL
    # alone, whose implicit policy fits the users' action frequencies poorly (its
    # TD targets fix Q of the logged action only); > 0 makes Q's action gaps the
    # users' log-odds, which the leave-aware read-out reads (docs/REWARD.md).
    behaviour_weight: float = Field(0.0, ge=0.0)
    # Hidden width of the quantile head's MLP.
    head_hidden: int = Field(64, ge=1)
    # The schedule (with windows_per_batch) reaching the best held-out action NLL
    # fastest on ML-100k: benchmarks/results/reward_schedule_ml100k_gru4rec*.json.
    learning_rate: float = Field(0.01, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_epochs: int = Field(30, ge=1)
    # Stop after this many epochs without a better validation `monitor` (keep the best epoch).
    patience: int = Field(4, ge=1)
    # Epoch selection on the validation exposures: "action_nll" (held-out negative
    # log-likelihood of the logged responses under softmax_a Q(s, a); exists on real
    # data) or "loss" (the IQ-Learn objective, not a reward-quality criterion).
    monitor: Literal["action_nll", "loss"] = "action_nll"
    # A training batch is `windows_per_batch` runs of `window` consecutive exposures
    # (plus one row for the last next state): one forward pass per run, no padding.
    window: int = Field(64, ge=1)
    windows_per_batch: int = Field(256, ge=1)
    grad_clip: float = Field(5.0, gt=0.0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Read-out: CVaR level q (mean of the lowest q-mass of the N reward quantiles,
    # the boundary quantile weighted by its fractional share).
    cvar_level: float = Field(0.3, gt=0.0, le=1.0)
    # Read-out: next displayed items drawn (from the train exposure distribution)
    # per exposure for the expected-next-value reward.
    next_item_samples: int = Field(8, ge=1)

    def for_backbone(self, kind: str) -> RewardConfig:
        """This config with the encoder of the reward model that guides `kind`."""
        return self.model_copy(update={"backbone": self.encoders.of(kind)})

    @model_validator(mode="after")
    def _irl_has_one_quantile(self) -> RewardConfig:
        if self.objective == "iq-learn" and self.n_quantiles != 1:
            raise ValueError("objective 'iq-learn' (the -IRL ablation) needs n_quantiles: 1")
        return self


# --- Recommender training and offline evaluation (models area) ---------------


class TrainConfig(StrictModel):
    """The training loop shared by every candidate (stage `train_recommender`)."""

    max_epochs: int = Field(30, ge=1)
    # Windows (a user's run of up to max_history positives and their exposures) per batch.
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    grad_clip: float | None = Field(5.0, gt=0.0)
    # Early stopping on a validation metric: "NDCG@10" (full ranking of each
    # user's valid positive, history masked), any key of the ranking metrics,
    # "AUC" (valid exposures) or "loss" (valid BCE, minimised).
    monitor: str = "NDCG@10"
    patience: int = Field(4, ge=1)
    # Weight of a full-catalogue softmax CE on positive exposures added to the
    # exposure BCE (RecBole's CE objective); 0 = BCE only. Dot-product backbones.
    catalogue_ce_weight: float = Field(0.0, ge=0.0)
    # How that softmax is normalised: "full" over every item (cost grows with the
    # catalogue), "sampled" over `catalogue_negatives` items shared by the batch
    # and drawn from (positives + 1) ** catalogue_sampling_alpha (0: uniform),
    # "in_batch" over the batch's positives; both with logQ correction.
    catalogue_loss: Literal["full", "sampled", "in_batch"] = "full"
    catalogue_negatives: int = Field(256, ge=1)
    catalogue_sampling_alpha: float = Field(0.0, ge=0.0, le=1.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Arithmetic of the training forward pass and loss: "fp32", or "bf16" under
    # torch.autocast (matrix products in bfloat16, losses and reductions in fp32,
    # fp32 weights and optimizer). bf16 pays off on GPUs with bf16 tensor cores
    # (A100, H100/H200); on most CPUs it is slower. Validation and test run in fp32.
    precision: Literal["fp32", "bf16"] = "fp32"
    # Processes of data-parallel training (torchrun; gloo on CPU, NCCL on GPU):
    # each takes its share of every epoch's batches, gradients are averaged, so
    # the effective batch is nproc * batch_size. 1: one process.
    nproc: int = Field(1, ge=1)
    # torch intra-op threads on CPU; null leaves torch's default.
    num_threads: int | None = Field(None, ge=1)
    # Users per batch when scoring the catalogue for validation / test.
    eval_batch_size: int = Field(256, ge=1)
    # Continue from the last epoch checkpoint when one exists.
    resume: bool = True


Backbone = Literal["sasrec", "gru4rec", "din"]


class RecommenderConfig(StrictModel):
    """The candidate matrix (backbone x guidance) and how each is trained."""

    backbones: tuple[Backbone, ...] = ("gru4rec",)
    # Guidance = the training loss: "none" (BCE), the comparison rows registered by
    # mtrec.baselines ("ntr", "adt-tce", "adt-rce", "pnfrec") and the MTRec
    # alignment losses registered by mtrec.reward ("mtrec", ...).
    guidances: tuple[str, ...] = ("none", "mtrec")
    # Options per guidance name, checked at load against that guidance's options
    # model (its registered pydantic model); an option left out takes the model's
    # default. Values may nest, e.g. pnfrec's negative_feedback block.
    guidance_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Per-backbone changes to `guidance_options` (e.g. {sasrec: {mtrec: {beta: 0.1}}}),
    # so one matrix can give each backbone its own options; merged key by key over
    # `guidance_options[<guidance>]` (see `options_for`).
    guidance_options_overrides: dict[Backbone, dict[str, dict[str, Any]]] = Field(
        default_factory=dict
    )
    seeds: tuple[int, ...] = (0, 1)
    # Per-exposure columns (the reward read-out) for guidances that need them, joined
    # onto the training exposures by (split, row order within the split): a folder
    # with one table per backbone (<backbone>.parquet, from the reward model on that
    # backbone: `mtrec read-out-rewards`), or one .parquet file every backbone shares.
    rewards_path: Path | None = Path("data/processed/rewards")
    sasrec: SASRecConfig = SASRecConfig()
    gru4rec: GRU4RecConfig = GRU4RecConfig()
    din: DINConfig = DINConfig()
    train: TrainConfig = TrainConfig()
    # Per-backbone changes to `train` (e.g. {sasrec: {catalogue_ce_weight: 1.0,
    # patience: 10}}), so one matrix can train each backbone with its own recipe.
    train_overrides: dict[Backbone, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_train_overrides(self) -> RecommenderConfig:
        for backbone in self.train_overrides:
            try:
                self.train_for(backbone)  # unknown keys or bad values fail here, at load
            except ValidationError as error:
                where = f"recommender.train_overrides.{backbone}"
                raise ValueError(f"{where}: {_one_line(error, TrainConfig)}") from None
        return self

    @model_validator(mode="after")
    def _check_guidances(self) -> RecommenderConfig:
        """Every guidance named (in the matrix, the options or the overrides) is
        registered, and its options parse into its options model, at load."""
        named = {"recommender.guidances": list(self.guidances)}
        named["recommender.guidance_options"] = list(self.guidance_options)
        for backbone, per_guidance in self.guidance_options_overrides.items():
            named[f"recommender.guidance_options_overrides.{backbone}"] = list(per_guidance)
        for where, names in named.items():
            for name in names:
                guidance_options_model(name, where)
        for guidance in self.guidance_options:
            self.parsed_options_for(None, guidance)
        for backbone, per_guidance in self.guidance_options_overrides.items():
            for guidance in per_guidance:
                self.parsed_options_for(backbone, guidance)
        return self

    def backbone_config(self, backbone: str) -> SASRecConfig | GRU4RecConfig | DINConfig:
        return {"sasrec": self.sasrec, "gru4rec": self.gru4rec, "din": self.din}[backbone]

    def train_for(self, backbone: str) -> TrainConfig:
        """The training loop settings of `backbone`: `train` plus its overrides."""
        override = self.train_overrides.get(backbone)
        if not override:
            return self.train
        return TrainConfig.model_validate({**self.train.model_dump(), **override})

    def options_for(self, backbone: str | None, guidance: str) -> dict[str, Any]:
        """The options `guidance` trains `backbone` with, as written in params.yaml:
        `guidance_options[guidance]` with `guidance_options_overrides[backbone][guidance]`
        merged over it (None: no backbone's overrides). What the loss factory gets."""
        options = dict(self.guidance_options.get(guidance, {}))
        if backbone is not None:
            options |= self.guidance_options_overrides.get(backbone, {}).get(guidance, {})
        return options

    def parsed_options_for(self, backbone: str | None, guidance: str) -> BaseModel:
        """`options_for` parsed into the guidance's options model (defaults filled in)."""
        model = guidance_options_model(guidance)
        where = "recommender.guidance_options"
        if backbone is not None and guidance in self.guidance_options_overrides.get(backbone, {}):
            where = f"recommender.guidance_options_overrides.{backbone}"
        try:
            return model.model_validate(self.options_for(backbone, guidance))
        except ValidationError as error:
            raise ValueError(f"{where}.{guidance}: {_one_line(error, model)}") from None

    def rewards_table(self, backbone: str) -> Path | None:
        """The per-exposure reward table the candidates of `backbone` train on."""
        if self.rewards_path is None or self.rewards_path.suffix == ".parquet":
            return self.rewards_path
        return self.rewards_path / f"{backbone}.parquet"


def guidance_options_model(name: str, where: str = "recommender") -> type[BaseModel]:
    """The options model of guidance `name`; an unknown name is a ValueError
    naming it, where it was found and the known names (closest first)."""
    # Imported here: the options models import this module (StrictModel).
    from mtrec.guidance_options import options_model

    return options_model(name, where)


class EvaluateConfig(StrictModel):
    """Offline evaluation of every trained candidate on the test split."""

    ks: tuple[int, ...] = (5, 10, 20)
    # NCIS weight cap c (METHOD.md §4).
    ncis_cap: float = Field(10.0, gt=0.0)
    # Ties in full ranking: "pessimistic" (target below equal scores) or "average".
    ties: Literal["pessimistic", "average"] = "pessimistic"
    batch_size: int = Field(256, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class Params(StrictModel):
    """The whole params.yaml: one typed model per section, no other key allowed.

    A section left out of a params file takes its model's defaults (which equal
    the project's params.yaml, see the module docstring)."""

    data: DataConfig = DataConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    split: SplitConfig = SplitConfig()
    paths: Paths = Paths()
    gate: GateConfig = GateConfig()
    tracking: TrackingConfig = TrackingConfig()
    package: PackageConfig = PackageConfig()
    flow: FlowConfig = FlowConfig()
    # A factory: checking the guidances needs their registry, imported on first use.
    recommender: RecommenderConfig = Field(default_factory=lambda: RecommenderConfig())
    evaluate: EvaluateConfig = EvaluateConfig()
    reward: RewardConfig = RewardConfig()
    online: OnlineConfig = OnlineConfig()

    @model_validator(mode="after")
    def _check_irl_ablation(self) -> Params:
        # The `irl` guidance reads the -IRL ablation's reward, which train_reward only
        # trains with reward.irl_ablation: fail at load, not after an hour of training.
        if "irl" in self.recommender.guidances and not self.reward.irl_ablation:
            raise ValueError(
                "reward.irl_ablation: the `irl` guidance of recommender.guidances reads the "
                "-IRL ablation's reward; set reward.irl_ablation: true (or drop `irl`)"
            )
        return self


class ParamsError(ValueError):
    """A params file that cannot be read or breaks the schema; the message is one
    line naming the file and the offending key(s)."""


def load_params(path: str | Path = "params.yaml") -> Params:
    """params.yaml as typed sections (all defaults when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return Params()
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(f"{path}: {_one_line(error, Params)}") from None


def _one_line(error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """A pydantic error as one line: `<dotted key>: <problem>` per error, joined by
    '; '. An unknown key gets the closest allowed key of its model, when `root`
    lets us find that model."""
    parts = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        where = ".".join(loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1]) if root is not None else []
            close = difflib.get_close_matches(loc[-1], allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            message = f"unknown key{hint}; allowed: {allowed}" if allowed else "unknown key"
        if item["type"] == "value_error" and message.split(":")[0].startswith(where):
            parts.append(message)  # the validator already named the full key
        else:
            parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys the model at `loc` (a path of field names from `model`) accepts."""
    for part in loc:
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        annotation = fields[part].annotation if part in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [info.alias or name for name, info in model.model_fields.items()]
