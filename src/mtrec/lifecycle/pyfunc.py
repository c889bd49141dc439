"""A saved recommender (plus its mental reward model) as an MLflow pyfunc.

The saved model directory (`weights.pt`, `config.json`, `items.json`) travels
as the pyfunc's artifacts, so `mlflow.pyfunc.load_model(uri)` rebuilds the
real torch module through `mtrec.models.load_model`; `unwrap_python_model()
.runtime.model` is that module. `predict` takes rows of
`{history: [item ids], k: int}` and returns the top-k item ids with their CTR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

MODEL_ARTIFACT = "recommender"
REWARD_ARTIFACT = "reward_model"
PIP_REQUIREMENTS = ["mtrec", "torch", "numpy", "pandas", "pydantic", "mlflow"]


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from mtrec.serving.runtime import RecommenderRuntime

        self.runtime = RecommenderRuntime.load(
            context.artifacts[MODEL_ARTIFACT], context.artifacts.get(REWARD_ARTIFACT)
        )

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for history, k in zip(model_input["history"], model_input["k"], strict=True):
            answer = self.runtime.recommend([str(i) for i in list(history)], int(k), True)
            rows.append(
                {
                    "items": [entry["item_id"] for entry in answer["items"]],
                    "ctr": [entry["ctr"] for entry in answer["items"]],
                }
            )
        return pd.DataFrame(rows)


def input_example(model_dir: Path) -> pd.DataFrame:
    from mtrec.models import load_item_ids

    ids = load_item_ids(model_dir) or ["1", "2", "3"]
    return pd.DataFrame({"history": [[str(i) for i in ids[:3]]], "k": [5]})


def log_recommender(
    model_dir: Path, reward_dir: Path | None = None, artifact_name: str = "model"
) -> Any:
    """Log into the active run; returns MLflow's ModelInfo (`.model_uri`)."""
    from mlflow.models import infer_signature

    from mtrec.serving.runtime import RecommenderRuntime

    artifacts = {MODEL_ARTIFACT: str(model_dir)}
    if reward_dir is not None and Path(reward_dir, "config.json").exists():
        artifacts[REWARD_ARTIFACT] = str(reward_dir)
    example = input_example(Path(model_dir))
    wrapper = RecommenderPyfunc()
    wrapper.runtime = RecommenderRuntime.load(model_dir, device="cpu")
    signature = infer_signature(example, wrapper.predict(None, example))
    return mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=RecommenderPyfunc(),
        artifacts=artifacts,
        signature=signature,
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
    )
