"""params.yaml is closed and fully typed, with one source of truth for defaults."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from mtrec.cli import app
from mtrec.config import (
    GRU4RecConfig,
    Params,
    ParamsError,
    RecommenderConfig,
    TrainConfig,
    load_params,
)
from mtrec.guidance_options import known_guidances, options_model
from mtrec.models import load_model
from mtrec.training.recommender import train_recommender

ROOT = Path(__file__).parents[1]
PARAMS = ROOT / "params.yaml"

# Fields of the config models that params.yaml does not spell out, each for a reason:
NOT_IN_PARAMS = {
    # Derived, not chosen: `for_backbone` sets it from `reward.encoders`.
    "reward.backbone": "derived",
    # The reward model's DIN encoder scores logged exposures, never a catalogue:
    # the two-stage ranking settings have nothing to do there.
    "reward.encoders.din.candidates": "not used by an encoder",
    "reward.encoders.din.candidate_neighbours": "not used by an encoder",
}
# Maps whose code default is "nothing overridden": the values they override are
# fields of their own (checked), so the default {} states no tunable value.
OVERRIDE_MAPS = {
    "recommender.train_overrides",
    "recommender.guidance_options_overrides",
}
# Checked guidance by guidance against each registered guidance's options model below.
PER_GUIDANCE = {"recommender.guidance_options"}


def _write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _model_of(annotation) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def _walk(code: BaseModel, loaded: BaseModel, raw: dict, prefix: str):
    """(key, problem) for every field of `code`'s model missing from `raw` or whose
    code default differs from the value params.yaml gives it."""
    for name, info in type(code).model_fields.items():
        key = info.alias or name
        dotted = f"{prefix}{key}"
        if dotted in NOT_IN_PARAMS or dotted in PER_GUIDANCE:
            continue
        if (
            typing.get_origin(info.annotation) is typing.Literal
            and len(typing.get_args(info.annotation)) == 1
        ):
            continue  # a discriminator (`kind`), not a setting
        if not isinstance(raw, dict) or key not in raw:
            yield dotted, "missing from params.yaml"
            continue
        if dotted in OVERRIDE_MAPS:
            continue
        nested = _model_of(info.annotation)
        if nested is not None:
            yield from _walk(getattr(code, name), getattr(loaded, name), raw[key], dotted + ".")
        elif not info.is_required() and getattr(code, name) != getattr(loaded, name):
            yield dotted, f"code default {getattr(code, name)!r} != params.yaml {raw[key]!r}"


def test_every_config_field_is_in_params_yaml_with_the_code_default():
    """A default that exists only in code, or a code default that disagrees with
    params.yaml, fails here (e.g. train.max_epochs 50 vs 30 did)."""
    raw = yaml.safe_load(PARAMS.read_text())
    problems = list(_walk(Params(), load_params(PARAMS), raw, ""))
    assert not problems, "\n".join(f"{key}: {problem}" for key, problem in problems)


def test_every_guidance_option_is_in_params_yaml_with_its_default():
    options = yaml.safe_load(PARAMS.read_text())["recommender"]["guidance_options"]
    problems = []
    for name in known_guidances():
        if name.startswith("test-"):  # registered by other tests of this session
            continue
        model = options_model(name)
        written = options.get(name)
        if written is None:
            problems.append(f"{name}: missing from recommender.guidance_options")
            continue
        problems += [f"{name}.{f}: missing" for f in model.model_fields if f not in written]
        if model.model_validate(written) != model():
            problems.append(f"{name}: params.yaml {written} != code defaults {model()}")
    assert not problems, "\n".join(problems)


def test_params_yaml_loads_and_is_the_code_defaults_plus_the_recipe_overrides():
    loaded = load_params(PARAMS)
    recipe = {"sasrec": {"catalogue_ce_weight": 1.0, "patience": 10}}
    # Every backbone has an entry (`{}`: nothing overridden), so dvc.yaml can list
    # each matrix member's own key.
    backbones = ("sasrec", "gru4rec", "din")
    assert loaded.recommender.train_overrides == {b: recipe.get(b, {}) for b in backbones}
    # SASRec's MTRec beta, tuned on validation (`mtrec tune`).
    tuned = {"sasrec": {"mtrec": {"beta": 0.13981961408994045}}}
    assert loaded.recommender.guidance_options_overrides == {b: tuned.get(b, {}) for b in backbones}
    defaults = Params().model_copy(
        update={
            "recommender": Params().recommender.model_copy(
                update={
                    "train_overrides": loaded.recommender.train_overrides,
                    "guidance_options_overrides": loaded.recommender.guidance_options_overrides,
                    "guidance_options": loaded.recommender.guidance_options,
                }
            )
        }
    )
    assert loaded == defaults


# ------------------------------------------------------------- a closed config


def test_a_misspelled_section_fails_at_load_naming_it_and_the_file(tmp_path):
    path = _write(tmp_path, {"recomender": {"seeds": [0]}})
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert "recomender: unknown key (did you mean 'recommender'?)" in message


def test_the_cli_reports_a_bad_params_file_in_one_line_without_a_traceback(tmp_path):
    path = _write(tmp_path, {"recomender": {"seeds": [0]}})
    result = CliRunner().invoke(app, ["split", "--params", str(path)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)  # not an uncaught exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "recomender" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in result.output


def test_a_misspelled_key_inside_a_section_is_named_with_its_path(tmp_path):
    path = _write(tmp_path, {"reward": {"encoders": {"gru4rec": {"hiden_dim": 8}}}})
    with pytest.raises(ParamsError, match=r"reward\.encoders\.gru4rec\.hiden_dim: unknown key"):
        load_params(path)
    path = _write(tmp_path, {"recommender": {"train_overrides": {"sasrec": {"patiense": 3}}}})
    with pytest.raises(ParamsError, match=r"train_overrides\.sasrec: patiense: unknown key"):
        load_params(path)


def test_invalid_yaml_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("recommender:\n  seeds: [0\n")
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert "\n" not in str(error.value) and "not valid YAML" in str(error.value)


@pytest.mark.parametrize(
    "recommender, named",
    [
        ({"guidance_options": {"mtrek": {"beta": 5}}}, "unknown guidance 'mtrek'"),
        ({"guidances": ["none", "mtrek"]}, "recommender.guidances: unknown guidance 'mtrek'"),
        ({"guidance_options": {"mtrec": {"bta": 5}}}, "guidance_options.mtrec: bta: unknown key"),
        ({"guidance_options": {"mtrec": {"beta": -1}}}, "guidance_options.mtrec: beta"),
        (
            {"guidance_options_overrides": {"sasrec": {"mtrec-cvar": {"q": 2}}}},
            "guidance_options_overrides.sasrec.mtrec-cvar: q",
        ),
        (
            {"guidance_options_overrides": {"sasrec": {"pnfrek": {}}}},
            "guidance_options_overrides.sasrec: unknown guidance 'pnfrek'",
        ),
        ({"guidance_options_overrides": {"bert4rec": {}}}, "guidance_options_overrides.bert4rec"),
    ],
    ids=["guidance", "matrix", "option", "value", "override-value", "override-name", "backbone"],
)
def test_guidance_names_and_options_are_checked_at_load(tmp_path, recommender, named):
    path = _write(tmp_path, {"recommender": recommender})
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert named in str(error.value) and "\n" not in str(error.value)
    if "mtrek" in named:
        assert "did you mean 'mtrec'?" in str(error.value)


def test_the_irl_guidance_without_its_reward_model_fails_at_load(tmp_path):
    # train_reward trains the -IRL ablation only with reward.irl_ablation; without it
    # the `irl` candidates would fail after the reward stage, not at load.
    matrix = {"guidances": ["none", "irl"]}
    path = _write(tmp_path, {"recommender": matrix, "reward": {"irl_ablation": False}})
    with pytest.raises(ParamsError, match=r"reward\.irl_ablation: the `irl` guidance"):
        load_params(path)
    path = _write(tmp_path, {"recommender": matrix, "reward": {"irl_ablation": True}})
    assert load_params(path).reward.irl_ablation


def test_options_are_parsed_into_the_guidances_options_model():
    config = RecommenderConfig(guidance_options={"adt-tce": {"max_drop_rate": 0.1}})
    parsed = config.parsed_options_for("gru4rec", "adt-tce")
    assert type(parsed) is options_model("adt-tce")
    assert (
        parsed.max_drop_rate == 0.1 and parsed.ramp_steps == options_model("adt-tce")().ramp_steps
    )


# -------------------------------------------------------- per-backbone options


def test_per_backbone_options_merge_over_the_guidance_options():
    config = RecommenderConfig(
        guidance_options={"mtrec-cvar": {"beta": 0.03, "q": 0.5}},
        guidance_options_overrides={"sasrec": {"mtrec-cvar": {"beta": 0.3}}},
    )
    assert config.options_for("sasrec", "mtrec-cvar") == {"beta": 0.3, "q": 0.5}
    assert config.options_for("gru4rec", "mtrec-cvar") == {"beta": 0.03, "q": 0.5}
    assert config.parsed_options_for("sasrec", "mtrec-cvar").beta == 0.3
    assert config.options_for("din", "none") == {}


def test_training_uses_the_backbones_own_options(toy_processed_dir, tmp_path):
    """gru4rec's override beta 0 turns its MTRec loss into plain BCE: the same
    weights as gru4rec-none, while the shared beta (2) really moves the model."""
    torch.set_num_threads(1)
    train = pd.read_parquet(toy_processed_dir / "train.parquet")
    rewards = pd.DataFrame(
        {
            "split": "train",
            "split_row": range(len(train)),
            "reward_pos_mean_z": np.where(train["item_idx"] % 2 == 0, 2.0, -2.0),
            "reward_neg_mean_z": 0.0,
        }
    )
    rewards_path = tmp_path / "rewards.parquet"
    rewards.to_parquet(rewards_path)

    def config(overrides: dict) -> RecommenderConfig:
        return RecommenderConfig(
            seeds=(0,),
            gru4rec=GRU4RecConfig(max_history=6, dim=8, hidden_dim=8),
            train=TrainConfig(max_epochs=1, batch_size=4, learning_rate=0.01, device="cpu"),
            guidance_options={"mtrec": {"beta": 2.0}},
            guidance_options_overrides=overrides,
            rewards_path=rewards_path,
        )

    def weights(cfg: RecommenderConfig, guidance: str, folder: str) -> dict:
        summary = train_recommender(cfg, "gru4rec", guidance, toy_processed_dir, tmp_path / folder)
        return load_model(summary["seeds"]["0"]["model_dir"], device="cpu").state_dict()

    unguided = weights(config({}), "none", "none")
    own = weights(config({"gru4rec": {"mtrec": {"beta": 0.0}}}), "mtrec", "own")
    shared = weights(config({"sasrec": {"mtrec": {"beta": 0.0}}}), "mtrec", "shared")
    assert all(torch.equal(unguided[k], own[k]) for k in unguided)
    assert not all(torch.equal(unguided[k], shared[k]) for k in unguided)


# ----------------------------------------------------------- testing knobs


@pytest.mark.parametrize("knob", ["stop_after_epochs", "progress"])
def test_testing_knobs_are_not_params(tmp_path, knob):
    path = _write(tmp_path, {"recommender": {"train": {knob: 1}}})
    with pytest.raises(ParamsError, match=rf"recommender\.train\.{knob}: unknown key"):
        load_params(path)


def test_stop_after_epochs_is_a_flag_of_train_recommender(toy_processed_dir, tmp_path):
    params = {
        "paths": {"processed": str(toy_processed_dir)},
        "recommender": {
            "seeds": [0],
            "gru4rec": {"max_history": 6, "dim": 8, "hidden_dim": 8},
            "train": {"max_epochs": 2, "patience": 2, "batch_size": 8, "device": "cpu"},
        },
    }
    path = _write(tmp_path, params)
    command = ["train-recommender", "--backbone", "gru4rec", "--models", str(tmp_path / "m")]
    command += ["--params", str(path), "--no-progress"]
    runner = CliRunner()
    stopped = runner.invoke(app, [*command, "--stop-after-epochs", "1"])
    assert stopped.exit_code == 3, stopped.output
    assert "stopped after epoch 1" in stopped.output and "resume" in stopped.output
    metrics = tmp_path / "m" / "gru4rec-none" / "seed_0" / "metrics.csv"
    assert len(pd.read_csv(metrics)) == 1
    resumed = runner.invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert len(pd.read_csv(metrics)) == 2


def test_loading_params_imports_no_torch_and_no_training_code():
    """Params are checked against the light options registry: the stages that only
    read params (ingest, validate, split) do not import the losses, so their DVC
    deps stay their own and they start fast."""
    import subprocess
    import sys

    code = (
        "import sys; from mtrec.config import load_params; "
        f"load_params({str(PARAMS)!r}); "
        "heavy = [m for m in sys.modules if m == 'torch' or m.startswith('mtrec.training')]; "
        "print(heavy); assert not heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_shipped_guidance_cannot_be_registered_with_other_options():
    from pydantic import BaseModel

    from mtrec.training.losses import register_guidance

    class Other(BaseModel):
        beta: float = 1.0

    with pytest.raises(ValueError, match="mtrec"):
        register_guidance("mtrec", options=Other)(lambda options, context: None)
