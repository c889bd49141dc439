"""Every guidance's name and the model of its options, without the losses.

params.yaml is checked at load (a misspelled guidance or option fails there),
which needs each guidance's options model; the losses that use them live with
torch and the training code. This module holds only the pydantic models (from
the light modules that define them: `mtrec.baselines.config` and
`mtrec.reward.options`), so loading params, and every stage that only reads
them (ingest, validate, split, ...), imports no training code; the DVC deps of
those stages stay their own. The training registry
(`mtrec.training.losses.register_guidance`) refuses a factory whose options
model differs from the one named here, so the two cannot drift.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ConfigDict


class NoOptions(BaseModel):
    """A guidance that takes no options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Guidances registered at run time beyond the ones shipped (a plugin of the
# user's, via mtrec.training.losses.register_guidance).
_REGISTERED: dict[str, type[BaseModel]] = {}


def register_options(name: str, model: type[BaseModel]) -> None:
    """Make a guidance that is not shipped known to params checking."""
    shipped = _shipped()
    if name in shipped and shipped[name] is not model:
        raise ValueError(
            f"guidance {name!r} takes {shipped[name].__name__} (mtrec.guidance_options), "
            f"not {model.__name__}"
        )
    if name not in shipped:
        _REGISTERED[name] = model


def options_models() -> dict[str, type[BaseModel]]:
    """Guidance name -> options model: every guidance mtrec ships, and any
    registered since."""
    return _shipped() | _REGISTERED


def _shipped() -> dict[str, type[BaseModel]]:
    from mtrec.baselines.config import (
        NotToRecommendConfig,
        PNFRecConfig,
        ReweightedLossConfig,
        TruncatedLossConfig,
    )
    from mtrec.reward.options import (
        AlignmentOptions,
        CVaROptions,
        ExpectedOptions,
        ProxyOptions,
    )

    return {
        "none": NoOptions,
        "ntr": NotToRecommendConfig,
        "adt-tce": TruncatedLossConfig,
        "adt-rce": ReweightedLossConfig,
        "pnfrec": PNFRecConfig,
        "mtrec": AlignmentOptions,
        "irl": AlignmentOptions,
        "mtrec-expected": ExpectedOptions,
        "mtrec-cvar": CVaROptions,
        "proxy-continuation": ProxyOptions,
    }


def known_guidances() -> list[str]:
    return sorted(options_models())


def options_model(name: str, where: str = "recommender") -> type[BaseModel]:
    """The options model of guidance `name`; an unknown name is a ValueError naming
    it, where it was found and the known names (closest first)."""
    models = options_models()
    if name not in models:
        close = difflib.get_close_matches(name, models, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{where}: unknown guidance {name!r}{hint}; registered: {sorted(models)}")
    return models[name]
