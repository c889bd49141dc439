"""The BentoML service: the champion recommender and its mental reward model.

    bentoml serve mtrec.serving.service:MtrecService --host 127.0.0.1   (from src/, or a Bento)

Endpoints (JSON bodies keyed by parameter name; OpenAPI at /docs.json):
- `POST /recommend` {history, k, exclude_history} -> top-k items with CTR and
  expected mental reward (null when no reward model was packaged)
- `POST /mental_reward` {history, items} -> reward quantiles, mean, CVaR per
  item; 503 when no reward model was packaged
- `POST /model_info` -> what is being served (registry version, candidate, data version)
- BentoML's probes: `GET /livez`, `GET /readyz` (ready once the model is loaded)

The contract (docs/CONTRACTS.md, `mtrec.serving.contract`): the schema declares
every limit (`maxItems`, `maxLength`, ranges), bodies are JSON only (415), at
most `MTREC_SERVE_MAX_BODY_BYTES` (413), and every error has one body,
`{"error": str, "detail": [{"loc", "msg", "type"}]}`, logged as one line.

Throughput: requests of a worker are answered in batches (`MicroBatcher`): one
recommender forward pass and one reward read-out for all requests queued while
the previous batch computed. Overload is refused, not queued: more than
`traffic.max_concurrency` requests in flight get 429 (BentoML), a full batch
queue 503. Settings (environment, read when the service module is imported):

    MTREC_SERVE_WORKERS          worker processes (default 2, for a 2-core machine: the
                                 HTTP stack is single-threaded Python per worker; each
                                 worker holds its own model copy and batches alone)
    MTREC_SERVE_TORCH_THREADS    torch threads per worker (default 1)
    MTREC_SERVE_MAX_BATCH        requests per forward pass (default 64)
    MTREC_SERVE_MAX_WAIT_MS      wait for a fuller batch (default 0: none)
    MTREC_SERVE_MAX_CONCURRENCY  requests in flight per service before 429 (default 64)
    MTREC_SERVE_TIMEOUT_S        answer within this or 504 (default 30)
    MTREC_SERVE_MAX_BODY_BYTES   request-size limit (default 1 MiB, or more if the
                                 limits need it)

The service binds 127.0.0.1 unless `--host` (or `BENTOML_HOST`) says otherwise:
exposing it beyond the machine is a deliberate choice.

The Bento model (the Bento argument `bento_model`; default
`$MTREC_BENTO_MODEL`, else `mtrec-recommender:latest`) is what `mtrec package`
imported from the registry's `champion` alias: folders `recommender/` and,
optionally, `reward_model/`, plus metadata (the request limits among them).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

from mtrec.serving.batching import MicroBatcher, Overloaded
from mtrec.serving.contract import ContractMiddleware, error_response, install_log_filter
from mtrec.serving.runtime import (
    RecommenderRuntime,
    RequestError,
    RewardModelMissing,
    RuntimeLimits,
)


class ServiceArguments(BaseModel):
    """Bento arguments (`bentoml build/serve --arg bento_model=<tag>`); a build
    stores them in the Bento, so the Bento serves the model it was built with."""

    bento_model: str = os.environ.get("MTREC_BENTO_MODEL", "mtrec-recommender:latest")


MODEL_TAG = bentoml.use_arguments(ServiceArguments).bento_model


def _setting(name: str, default: int) -> int:
    value = int(os.environ.get(name, default))
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def limits_of(metadata: dict[str, Any]) -> RuntimeLimits:
    """The request limits `mtrec package` stored with the Bento model."""
    defaults = RuntimeLimits()
    return RuntimeLimits(
        max_history=int(metadata.get("max_history", defaults.max_history)),
        max_items_per_request=int(
            metadata.get("max_items_per_request", defaults.max_items_per_request)
        ),
    )


def _declared_limits(tag: str) -> RuntimeLimits:
    """The served model's limits, for the schema (read when the module is imported).
    Without a model store (importing the module elsewhere) the defaults."""
    try:
        return limits_of(dict(bentoml.models.get(tag).info.metadata or {}))
    except Exception:
        return RuntimeLimits()


# Read when the module is imported, unlike the rest of the package (STYLE.md 9): a
# BentoML service declares its schema and its configuration in the class
# statement, so they must be known then (BentoML reads the model tag the same way).
LIMITS = _declared_limits(MODEL_TAG)
WORKERS = _setting("MTREC_SERVE_WORKERS", 2) or 1
TORCH_THREADS = _setting("MTREC_SERVE_TORCH_THREADS", 1) or 1
MAX_BATCH = _setting("MTREC_SERVE_MAX_BATCH", 64) or 1
MAX_WAIT_MS = _setting("MTREC_SERVE_MAX_WAIT_MS", 0)
MAX_CONCURRENCY = _setting("MTREC_SERVE_MAX_CONCURRENCY", 64) or None
TIMEOUT_S = _setting("MTREC_SERVE_TIMEOUT_S", 30) or 30
# The largest valid body (every id at full length, JSON quoting), with room to spare.
_NEEDED = 2 * (LIMITS.max_history + LIMITS.max_items_per_request) * (LIMITS.max_id_length + 8)
MAX_BODY_BYTES = _setting("MTREC_SERVE_MAX_BODY_BYTES", max(2**20, _NEEDED + 4096))

ItemId = (
    Annotated[StrictStr, Field(min_length=1, max_length=LIMITS.max_id_length)]
    | Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
)
HistoryField = Annotated[
    list[ItemId],
    Field(
        max_length=LIMITS.max_history,
        description="The user's positive items, oldest first (original ids).",
    ),
]
ItemsField = Annotated[
    list[ItemId],
    Field(
        min_length=1,
        max_length=LIMITS.max_items_per_request,
        description="Items to score (original ids).",
    ),
]
KField = Annotated[
    StrictInt,
    Field(
        ge=1,
        le=LIMITS.max_items_per_request,
        description="How many items to return (at most the catalogue, less the history "
        "when it is excluded).",
    ),
]


class RecommendedItem(BaseModel):
    item_id: str
    ctr: float = Field(description="P(click) under the recommender's CTR head.")
    expected_mental_reward: float | None = Field(
        description="Mean mental reward of a click (null without a reward model)."
    )


class RecommendResponse(BaseModel):
    items: list[RecommendedItem]
    reward_model: bool


class ItemReward(BaseModel):
    item_id: str
    quantiles: list[float]
    mean: float
    cvar: float


class MentalRewardResponse(BaseModel):
    quantile_levels: list[float]
    cvar_level: float
    items: list[ItemReward]


def _request_error(error: RequestError):
    detail = [{"loc": [error.field], "msg": error.message, "type": "value_error"}]
    return error_response(400, str(error), detail)


@bentoml.service(
    name="mtrec",
    workers=WORKERS,
    threads=1,
    traffic={"timeout": TIMEOUT_S, "max_concurrency": MAX_CONCURRENCY},
    http={"host": "127.0.0.1"},
)
class MtrecService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import torch

        install_log_filter()
        torch.set_num_threads(TORCH_THREADS)
        metadata = dict(self.bento_model.info.metadata or {})
        reward_dir = Path(self.bento_model.path_of("reward_model"))
        self.runtime = RecommenderRuntime.load(
            self.bento_model.path_of("recommender"),
            reward_dir if reward_dir.exists() else None,
            limits_of(metadata),
        )
        self.metadata = metadata
        self.runtime.warm_up()  # before /readyz says ready
        # Queue bound: the in-flight limit already caps it; this is the backstop.
        self.batcher = MicroBatcher(
            self.runtime.answer,
            max_batch_size=MAX_BATCH,
            max_queue=max(MAX_BATCH, 4 * (MAX_CONCURRENCY or 256)),
            max_wait_ms=MAX_WAIT_MS,
        )

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    async def _answer(self, query: Any) -> Any:
        try:
            return await self.batcher.submit(query)
        except Overloaded as error:
            return error_response(503, f"overloaded: {error}", headers={"Retry-After": "1"})

    @bentoml.api(route="/recommend")
    async def recommend(
        self,
        history: HistoryField,
        k: KField = 10,
        exclude_history: StrictBool = True,
    ) -> RecommendResponse:
        try:
            query = self.runtime.check_recommend(list(history), k, exclude_history)
        except RequestError as error:
            return _request_error(error)
        answer = await self._answer(query)
        return RecommendResponse(**answer) if isinstance(answer, dict) else answer

    @bentoml.api(route="/mental_reward")
    async def mental_reward(self, history: HistoryField, items: ItemsField) -> MentalRewardResponse:
        try:
            query = self.runtime.check_mental_reward(list(history), list(items))
        except RequestError as error:
            return _request_error(error)
        except RewardModelMissing as error:
            return error_response(503, str(error))
        answer = await self._answer(query)
        return MentalRewardResponse(**answer) if isinstance(answer, dict) else answer

    @bentoml.api(route="/model_info")
    async def model_info(self) -> dict:
        return {
            "bento_model": str(self.bento_model.tag),
            "n_items": self.runtime.n_items,
            "kind": self.runtime.description.get("kind"),
            "reward_model": self.runtime.reward_network is not None,
            "limits": {
                "max_history": self.runtime.limits.max_history,
                "max_items_per_request": self.runtime.limits.max_items_per_request,
                "max_id_length": self.runtime.limits.max_id_length,
                "max_body_bytes": MAX_BODY_BYTES,
            },
            "batching": self.batcher.stats(),
            **{key: value for key, value in self.metadata.items() if isinstance(value, str)},
        }


MtrecService.add_asgi_middleware(
    ContractMiddleware, service=MtrecService, max_body_bytes=MAX_BODY_BYTES
)
