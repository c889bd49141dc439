"""Do two runs of the pipeline produce the same bits? Compare their dvc.lock files.

Run the default job in two fresh clones (or a clone and main), then:

    python benchmarks/lock_diff.py /tmp/clone_a/dvc.lock /tmp/clone_b/dvc.lock \
        --out benchmarks/results/dvc_lock_two_runs.json

Every stage's deps and outs are compared by hash: the JSON lists the paths
whose hashes agree and those that differ (with both hashes), per stage, and
whether the differences are confined to `--expected` paths (the documented
exceptions: `reports/gate.json` and `reports/package.json` carry MLflow run
ids, registry model ids, Bento tags and the git commit, which differ on every
run by design). Exit status 1 when anything else differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

EXPECTED = ("reports/gate.json", "reports/package.json")


def entries(
    lock: dict, kinds: tuple[str, ...] = ("deps", "outs")
) -> dict[tuple[str, str, str], str]:
    """(stage, deps|outs, path) -> hash, for every stage of a dvc.lock."""
    out = {}
    for stage, body in lock.get("stages", {}).items():
        for kind in kinds:
            for item in body.get(kind, []):
                digest = item.get("md5") or item.get("hash") or ""
                out[(stage, kind, item["path"])] = str(digest)
    return out


def compare(
    a: dict, b: dict, expected: tuple[str, ...], kinds: tuple[str, ...] = ("deps", "outs")
) -> dict:
    """Hash by hash; `kinds=("outs",)` compares what the stages wrote only (two
    code versions that must produce the same bits)."""
    left, right = entries(a, kinds), entries(b, kinds)
    same, different, only = [], [], []
    for key in sorted(set(left) | set(right)):
        if key not in left or key not in right:
            only.append({"stage": key[0], "kind": key[1], "path": key[2]})
        elif left[key] == right[key]:
            same.append({"stage": key[0], "kind": key[1], "path": key[2]})
        else:
            different.append(
                {
                    "stage": key[0],
                    "kind": key[1],
                    "path": key[2],
                    "a": left[key],
                    "b": right[key],
                    "expected": key[2] in expected,
                }
            )
    params_differ = [
        stage
        for stage in sorted(set(a.get("stages", {})) & set(b.get("stages", {})))
        if a["stages"][stage].get("params") != b["stages"][stage].get("params")
    ]
    unexpected = [d for d in different if not d["expected"]]
    return {
        "n_compared": len(same) + len(different),
        "n_identical": len(same),
        "different": different,
        "only_in_one": only,
        "stages_with_different_params": params_differ,
        "expected_exceptions": list(expected),
        "identical_except_expected": not unexpected and not only and not params_differ,
        "identical": [f"{s['stage']}:{s['kind']}:{s['path']}" for s in same],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--expected", nargs="*", default=list(EXPECTED))
    parser.add_argument("--note", default="", help="what the two runs were")
    parser.add_argument(
        "--outs-only",
        action="store_true",
        help="compare the stages' outputs only (a refactor: the code deps differ by design)",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {
        "a": str(args.a),
        "b": str(args.b),
        "note": args.note,
        "compared": "outs" if args.outs_only else "deps and outs",
        **compare(
            yaml.safe_load(args.a.read_text()),
            yaml.safe_load(args.b.read_text()),
            tuple(args.expected),
            ("outs",) if args.outs_only else ("deps", "outs"),
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    paths = sorted({d["path"] for d in result["different"]})
    print(
        f"{result['n_identical']} of {result['n_compared']} hashes identical; "
        f"different: {paths or 'none'}; only in one: {len(result['only_in_one'])}; "
        f"identical except the expected exceptions: {result['identical_except_expected']}"
    )
    sys.exit(0 if result["identical_except_expected"] else 1)


if __name__ == "__main__":
    main()
