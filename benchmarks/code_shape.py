"""The shape of `src/mtrec` at a git revision: import graph, sizes, longest functions.

Reads the sources straight from git (`git show REV:path`, nothing checked
out) or from the working tree, parses them with `ast` (no import is
executed) and writes `benchmarks/results/code_shape/<label>.json`:

- `modules`: lines per module (physical, and code = not blank, not comment-only);
- `packages`: the same summed per package (`mtrec.<first part>`; `mtrec` for
  top-level modules);
- `edges`: internal imports, module -> mtrec module it imports, each marked
  `lazy` when the import sits inside a function (it runs on first call);
- `longest_functions`: the 15 longest functions and methods (qualified name,
  def line to last line);
- `serving`: the mtrec modules the serving package reaches transitively,
  once with module-level imports only (`at_import`) and once with the lazy
  ones too (`when_serving`), and which of them belong to `mtrec.reward`.

    python benchmarks/code_shape.py --rev af20300 --label before
    python benchmarks/code_shape.py --rev HEAD --label after
    python benchmarks/code_shape.py --summary before after     # summary.json

`--summary` compares two written labels: per-package lines, modules added or
removed, the serving closures, and (from `git diff --numstat` between their
revisions) lines added and removed per package.
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "code_shape"
SOURCE = "src/mtrec"
LONGEST = 15
SERVING = "mtrec.serving"


# --- reading sources -------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


def read_sources(revision: str | None) -> dict[str, str]:
    """{path under the repo: text} of every .py file of `src/mtrec`."""
    if revision is None:
        return {
            str(path.relative_to(ROOT)): path.read_text()
            for path in sorted((ROOT / SOURCE).rglob("*.py"))
        }
    paths = git("ls-tree", "-r", "--name-only", revision, "--", SOURCE).split()
    return {path: git("show", f"{revision}:{path}") for path in paths if path.endswith(".py")}


def module_name(path: str) -> str:
    parts = Path(path).relative_to("src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


# --- one module --------------------------------------------------------------------


def count_lines(text: str) -> dict[str, int]:
    lines = text.splitlines()
    code = [line for line in lines if line.strip() and not line.strip().startswith("#")]
    return {"lines": len(lines), "code_lines": len(code)}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """(imported name, lazy) of every import statement; relative imports resolved,
    `from X import y` given as X.y (resolved against the module set later)."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return  # never executed
        if isinstance(node, ast.Import):
            found.extend((alias.name, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.extend((f"{base}.{alias.name}", lazy) for alias in node.names)
        inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def functions_of(tree: ast.Module, module: str) -> list[dict]:
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                out.append(
                    {
                        "name": f"{module}:{name}",
                        "lines": child.end_lineno - child.lineno + 1,
                    }
                )
                visit(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


# --- the whole tree ------------------------------------------------------------------


def resolve(name: str, modules: set[str]) -> str | None:
    """The mtrec module an imported name loads: the longest module prefix of it."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def parents(module: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def closure(starts: set[str], edges: list[dict], modules: set[str], lazy: bool) -> list[str]:
    graph: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        if lazy or not edge["lazy"]:
            graph[edge["source"]].add(edge["target"])
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(graph[module])
        todo.extend(p for p in parents(module) if p in modules)
    return sorted(seen)


def shape(sources: dict[str, str]) -> dict:
    modules: dict[str, dict] = {}
    raw_imports: dict[str, list[tuple[str, bool]]] = {}
    functions: list[dict] = []
    for path, text in sources.items():
        name = module_name(path)
        tree = ast.parse(text, filename=path)
        modules[name] = {"path": path, **count_lines(text)}
        raw_imports[name] = imports_of(tree, name, path.endswith("__init__.py"))
        functions.extend(functions_of(tree, name))
    names = set(modules)
    lazy_of: dict[tuple[str, str], bool] = {}
    for source, imported in raw_imports.items():
        for name, lazy in imported:
            if not name.startswith("mtrec"):
                continue
            target = resolve(name, names)
            if target is None or target == source:
                continue
            key = (source, target)
            lazy_of[key] = lazy_of.get(key, True) and lazy  # eager if any import is
    edges = [{"source": s, "target": t, "lazy": lazy} for (s, t), lazy in sorted(lazy_of.items())]
    packages: dict[str, dict[str, int]] = defaultdict(
        lambda: {"modules": 0, "lines": 0, "code_lines": 0}
    )
    for name, info in modules.items():
        entry = packages[package_of(name)]
        entry["modules"] += 1
        entry["lines"] += info["lines"]
        entry["code_lines"] += info["code_lines"]
    starts = {name for name in names if name == SERVING or name.startswith(f"{SERVING}.")}
    serving = {}
    for key, lazy in (("at_import", False), ("when_serving", True)):
        reached = closure(starts, edges, names, lazy)
        serving[key] = {
            "modules": reached,
            "reward_modules": [m for m in reached if m.startswith("mtrec.reward")],
            "lines": sum(modules[m]["lines"] for m in reached),
        }
    functions.sort(key=lambda f: (-f["lines"], f["name"]))
    return {
        "totals": {
            "modules": len(modules),
            "lines": sum(m["lines"] for m in modules.values()),
            "code_lines": sum(m["code_lines"] for m in modules.values()),
            "internal_edges": len(edges),
            "lazy_edges": sum(e["lazy"] for e in edges),
            "functions": len(functions),
        },
        "packages": dict(sorted(packages.items())),
        "modules": dict(sorted(modules.items())),
        "edges": edges,
        "longest_functions": functions[:LONGEST],
        "serving": serving,
    }


# --- comparing two labels ---------------------------------------------------------------


def numstat(before: str, after: str) -> dict[str, dict[str, int]]:
    """Lines added / removed per package between two revisions (git diff --numstat)."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"added": 0, "removed": 0, "files": 0})
    for line in git("diff", "--numstat", before, after, "--", SOURCE).splitlines():
        added, removed, path = line.split("\t")
        if not path.endswith(".py") or added == "-":
            continue
        entry = per[package_of(module_name(path))]
        entry["added"] += int(added)
        entry["removed"] += int(removed)
        entry["files"] += 1
    return dict(sorted(per.items()))


def summary(before: dict, after: dict) -> dict:
    packages = sorted(set(before["packages"]) | set(after["packages"]))
    empty = {"modules": 0, "lines": 0, "code_lines": 0}
    lines = {
        name: {
            "before": before["packages"].get(name, empty)["lines"],
            "after": after["packages"].get(name, empty)["lines"],
            "delta": after["packages"].get(name, empty)["lines"]
            - before["packages"].get(name, empty)["lines"],
        }
        for name in packages
    }
    out = {
        "before": {"label": before["label"], "revision": before["revision"]},
        "after": {"label": after["label"], "revision": after["revision"]},
        "totals": {
            key: {"before": before["totals"][key], "after": after["totals"][key]}
            for key in before["totals"]
        },
        "package_lines": lines,
        "modules_added": sorted(set(after["modules"]) - set(before["modules"])),
        "modules_removed": sorted(set(before["modules"]) - set(after["modules"])),
        "serving": {
            key: {
                "before_reward_modules": before["serving"][key]["reward_modules"],
                "after_reward_modules": after["serving"][key]["reward_modules"],
                "before_modules": len(before["serving"][key]["modules"]),
                "after_modules": len(after["serving"][key]["modules"]),
                "before_lines": before["serving"][key]["lines"],
                "after_lines": after["serving"][key]["lines"],
            }
            for key in ("at_import", "when_serving")
        },
        "longest_function": {
            "before": before["longest_functions"][0],
            "after": after["longest_functions"][0],
        },
    }
    if "working tree" not in (before["revision"], after["revision"]):
        out["diff_per_package"] = numstat(before["revision"], after["revision"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", help="git revision (default: the working tree)")
    parser.add_argument("--label", help="output name: results/code_shape/<label>.json")
    parser.add_argument("--summary", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.summary:
        before, after = (json.loads((args.out / f"{n}.json").read_text()) for n in args.summary)
        name = "summary.json" if args.summary == ["before", "after"] else "summary_{}_{}.json"
        path = args.out / name.format(*args.summary)
        path.write_text(json.dumps(summary(before, after), indent=2) + "\n")
        print(path)
        return
    if not args.label:
        parser.error("--label is required (or --summary BEFORE AFTER)")
    revision = git("rev-parse", args.rev).strip() if args.rev else "working tree"
    result = {"label": args.label, "revision": revision, **shape(read_sources(args.rev))}
    path = args.out / f"{args.label}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(path, json.dumps(result["totals"]))


if __name__ == "__main__":
    main()
