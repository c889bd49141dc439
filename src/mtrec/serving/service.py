"""The BentoML service: the champion recommender and its mental reward model.

    bentoml serve mtrec.serving.service:MtrecService       (from src/, or a built Bento)

Endpoints (JSON bodies keyed by parameter name; OpenAPI at /docs.json):
- `POST /recommend` {history, k, exclude_history} -> top-k items with CTR and
  expected mental reward (null when no reward model was packaged)
- `POST /mental_reward` {history, items} -> reward quantiles, mean, CVaR per
  item; 503 with a message when no reward model was packaged
- `POST /model_info` -> what is being served (registry version, candidate, data version)
- BentoML's probes: `GET /livez`, `GET /readyz` (ready once the model is loaded)

Every request problem is a 4xx naming the field; wrong JSON types are
rejected by pydantic (400, `{"error", "detail"}`).

The Bento model (the Bento argument `bento_model`; default
`$MTREC_BENTO_MODEL`, else `mtrec-recommender:latest`) is what `mtrec package`
imported from the registry's `champion` alias: folders `recommender/` and,
optionally, `reward_model/`, plus metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import bentoml
from bentoml.exceptions import InvalidArgument, ServiceUnavailable
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr

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

ItemId = StrictStr | StrictInt
HistoryField = Annotated[
    list[ItemId], Field(description="The user's positive items, oldest first (original ids).")
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


@bentoml.service(name="mtrec", traffic={"timeout": 30})
class MtrecService:
    bento_model = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        metadata = dict(self.bento_model.info.metadata or {})
        reward_dir = Path(self.bento_model.path_of("reward_model"))
        limits = RuntimeLimits(
            max_history=int(metadata.get("max_history", RuntimeLimits.max_history)),
            max_items_per_request=int(
                metadata.get("max_items_per_request", RuntimeLimits.max_items_per_request)
            ),
        )
        self.runtime = RecommenderRuntime.load(
            self.bento_model.path_of("recommender"),
            reward_dir if reward_dir.exists() else None,
            limits,
        )
        self.metadata = metadata

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    @bentoml.api(route="/recommend")
    def recommend(
        self,
        history: HistoryField,
        k: Annotated[StrictInt, Field(description="How many items to return.")] = 10,
        exclude_history: StrictBool = True,
    ) -> RecommendResponse:
        try:
            return RecommendResponse(**self.runtime.recommend(list(history), k, exclude_history))
        except RequestError as error:
            raise InvalidArgument(str(error)) from None

    @bentoml.api(route="/mental_reward")
    def mental_reward(
        self,
        history: HistoryField,
        items: Annotated[list[ItemId], Field(description="Items to score (original ids).")],
    ) -> MentalRewardResponse:
        try:
            return MentalRewardResponse(**self.runtime.mental_reward(list(history), list(items)))
        except RequestError as error:
            raise InvalidArgument(str(error)) from None
        except RewardModelMissing as error:
            raise ServiceUnavailable(str(error)) from None

    @bentoml.api(route="/model_info")
    def model_info(self) -> dict:
        return {
            "bento_model": str(self.bento_model.tag),
            "n_items": self.runtime.n_items,
            "kind": self.runtime.description.get("kind"),
            "reward_model": self.runtime.reward_network is not None,
            "limits": {
                "max_history": self.runtime.limits.max_history,
                "max_items_per_request": self.runtime.limits.max_items_per_request,
            },
            **{key: value for key, value in self.metadata.items() if isinstance(value, str)},
        }
