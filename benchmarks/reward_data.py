"""Processed splits for the reward benchmarks, built with the pipeline's own
steps (ingest -> validate -> split) outside DVC, so a benchmark can run on a
world of its own size without touching data/.

    python benchmarks/reward_data.py --out /tmp/rb/sim --source synthetic \
        --n-users 1000 --n-items 500            # main's default simulated world
    python benchmarks/reward_data.py --out /tmp/rb/ml100k --source ml-100k

The simulator log keeps every exposure (logged negatives); ML-100k gets the
default split's 4 uniform negatives per positive. Leave-one-out as the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mtrec.config import DataConfig, SimulatorConfig, SplitConfig, ValidateConfig
from mtrec.data.ingest import ingest
from mtrec.data.split import split_exposures
from mtrec.data.validate import validate_exposures


def prepare(
    out: Path,
    source: str,
    simulator: SimulatorConfig | None = None,
    split: SplitConfig | None = None,
    k_core: int = 0,
) -> Path:
    """Write out/raw, out/validated and out/processed; return the processed folder."""
    out = Path(out)
    if source == "synthetic":
        simulator = (simulator or SimulatorConfig()).model_copy(
            update={"truth_path": str(out / "raw" / "simulator_truth.npz")}
        )
        # The world's weights beside its truth, for evaluation-only references.
        (out / "raw").mkdir(parents=True, exist_ok=True)
        (out / "raw" / "simulator_config.json").write_text(simulator.model_dump_json(indent=1))
    data = DataConfig(source=source, **({"simulator": simulator} if source == "synthetic" else {}))
    ingest(data, out / "raw" / "exposures.parquet")
    validate_exposures(
        out / "raw" / "exposures.parquet",
        out / "validated" / "exposures.parquet",
        out / "validation.json",
        ValidateConfig(k_core=k_core),
    )
    split_exposures(
        out / "validated" / "exposures.parquet", out / "processed", split or SplitConfig()
    )
    return out / "processed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--source", default="synthetic", choices=["synthetic", "ml-100k"])
    parser.add_argument(
        "--k-core",
        type=int,
        default=None,
        help="validate.k_core; default 3 for the simulator (in the default world one user "
        "of 1,000 clicks fewer than 3 times, which leave-one-out cannot split), 0 for ML-100k",
    )
    parser.add_argument("--seed", type=int, default=7, help="simulator world seed")
    parser.add_argument("--n-users", type=int, default=1000)
    parser.add_argument("--n-items", type=int, default=500)
    parser.add_argument("--sessions-per-user", type=int, default=5)
    parser.add_argument("--max-session-length", type=int, default=30)
    args = parser.parse_args()
    simulator = SimulatorConfig(
        seed=args.seed,
        n_users=args.n_users,
        n_items=args.n_items,
        sessions_per_user=args.sessions_per_user,
        max_session_length=args.max_session_length,
    )
    k_core = args.k_core if args.k_core is not None else (3 if args.source == "synthetic" else 0)
    processed = prepare(args.out, args.source, simulator, k_core=k_core)
    print(json.loads((processed / "meta.json").read_text()))


if __name__ == "__main__":
    main()
