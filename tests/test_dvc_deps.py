"""dvc.yaml's code dependencies are exactly each stage's import closure.

For every stage, the `mtrec <command>` it runs is mapped to the CLI function
that implements it; the closure is that function's imports plus everything
they import, transitively, inside `src/mtrec`. Every import counts: at module
level, inside functions (lazy imports) and by string (`importlib.import_module`
of a plugin list): whatever can run when the stage runs. The imports of *other*
CLI commands are not part of a stage's closure: the CLI module is read
command by command. Package `__init__.py` files run on import, so they are
part of the closure.

A stage's `src/` deps (files, or folders standing for every .py under them)
must list exactly that closure: a module missing from the deps could change
a result that `dvc status` would still call up to date, and a listed file
outside the closure reruns the stage for nothing.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "mtrec"
MODULE_NAME = re.compile(r"^mtrec(\.[A-Za-z_]\w*)*$")


def module_file(name: str) -> Path | None:
    """The file of module `name` under src/, if it is one of ours."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = SRC.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every `mtrec...` module an AST can import when it runs: import statements
    anywhere (module level or inside functions), `from pkg import submodule`,
    and string literals naming a module (imports by name). Imports under
    `if TYPE_CHECKING:` never run and are skipped."""
    found: set[str] = set()
    package = current if is_package else current.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            for alias in node.names:  # `from mtrec.data import sequences`
                found.add(f"{source}.{alias.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if MODULE_NAME.match(node.value):
                found.add(node.value)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    ours = set()
    for name in found:
        # `import mtrec.a.b` runs mtrec/__init__, mtrec/a/__init__ and mtrec/a/b.
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if module_file(prefix) is not None:
                ours.add(prefix)
    return ours


@cache
def _module_imports(path: Path) -> frozenset[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return frozenset(imported_modules(tree, module_name(path), path.name == "__init__.py"))


def closure(start: set[str]) -> set[Path]:
    """Files of the modules in `start` and of everything they import, transitively."""
    seen: set[Path] = set()
    todo = [module_file(name) for name in start]
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(module_file(name) for name in _module_imports(path))
    return seen


def cli_command_closure(command: str) -> set[Path]:
    """What `mtrec <command>` can run: cli.py's module-level imports, the
    command function's own (lazy) imports, and their closure."""
    from mtrec import cli

    callbacks = {
        (info.name or info.callback.__name__.replace("_", "-")): info.callback
        for info in cli.app.registered_commands
    }
    assert command in callbacks, f"`mtrec {command}` is not a command of mtrec.cli"
    cli_file = Path(inspect.getsourcefile(cli)).resolve()
    cli_tree = ast.parse(cli_file.read_text())
    module_level = ast.Module(
        body=[
            node
            for node in cli_tree.body
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        ],
        type_ignores=[],
    )
    start = imported_modules(module_level, "mtrec.cli", False)
    # Module-level helpers the command calls (e.g. _reward_backbones) run too.
    functions = {node.name: node for node in cli_tree.body if isinstance(node, ast.FunctionDef)}
    todo, visited = [callbacks[command].__name__], set()
    while todo:
        name = todo.pop()
        if name in visited or name not in functions:
            continue
        visited.add(name)
        start |= imported_modules(functions[name], "mtrec.cli", False)
        todo.extend(node.id for node in ast.walk(functions[name]) if isinstance(node, ast.Name))
    return closure(start) | {SRC / "mtrec" / "cli.py"}


def bento_service_closure(bentofile: Path = ROOT / "bentofile.yaml") -> set[Path]:
    """What the built Bento runs: the closure of bentofile.yaml's service module."""
    service = yaml.safe_load(bentofile.read_text())["service"].partition(":")[0]
    return closure({service})


def stage_closure(stage: dict) -> set[Path]:
    """The code a stage runs: its command's closure, plus the Bento's service
    when the stage builds one (lists bentofile.yaml)."""
    needed = cli_command_closure(mtrec_command(stage["cmd"]))
    if "bentofile.yaml" in [str(d) for d in stage.get("deps", [])]:
        needed |= bento_service_closure()
    return {p.resolve() for p in needed}


def suggested_deps(files: set[Path]) -> list[str]:
    """`files` as dvc.yaml deps: a folder when every .py under it is needed."""
    files = {p.resolve() for p in files}
    out: list[str] = []

    def walk(folder: Path) -> None:
        for child in sorted(folder.iterdir()):
            if child.name == "__pycache__":
                continue
            if child.is_dir():
                inside = {p.resolve() for p in child.rglob("*.py") if "__pycache__" not in p.parts}
                if inside and inside <= files:
                    out.append(str(child.relative_to(ROOT)))
                elif inside & files:
                    walk(child)
            elif child.resolve() in files:
                out.append(str(child.relative_to(ROOT)))

    walk(SRC / PACKAGE)
    return out


def listed_code(deps: list) -> dict[str, set[Path]]:
    """A stage's deps under src/ -> the .py files each stands for."""
    out = {}
    for dep in deps:
        path = str(dep if isinstance(dep, str) else next(iter(dep)))
        if not path.startswith("src/"):
            continue
        full = ROOT / path
        if full.is_dir():
            out[path] = {p for p in full.rglob("*.py") if "__pycache__" not in p.parts}
        else:
            out[path] = {full}
    return out


def stages(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, dict]:
    """Stage name -> its definition (the `do` body of a foreach stage)."""
    raw = yaml.safe_load(dvc_yaml.read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def mtrec_command(cmd: str) -> str:
    words = shlex.split(cmd if isinstance(cmd, str) else cmd[0])
    assert words[0] == "mtrec", f"stage command {cmd!r} does not run `mtrec`"
    return words[1]


def disagreements(stage: dict) -> list[str]:
    """What is wrong with a stage's code deps, in words (empty: exact)."""
    needed = stage_closure(stage)
    listed = listed_code(stage.get("deps", []))
    covered = {p.resolve() for files in listed.values() for p in files}
    problems = [
        f"missing dep {p.relative_to(ROOT)} (imported when the stage runs)"
        for p in sorted(needed - covered)
    ]
    for path, files in sorted(listed.items()):
        if not files:
            problems.append(f"listed dep {path} does not exist")
        extra = sorted(p.relative_to(ROOT) for p in files if p.resolve() not in needed)
        if extra:
            problems.append(f"listed dep {path} covers files outside the closure: {extra}")
    return problems


@pytest.mark.parametrize("name", sorted(stages()))
def test_stage_code_deps_are_its_import_closure(name):
    problems = disagreements(stages()[name])
    assert not problems, f"dvc.yaml stage {name!r}:\n  " + "\n  ".join(problems)


def test_check_sees_a_removed_dependency():
    """The check above can fail: drop one module from a stage and it is reported."""
    stage = stages()["train_recommender"]
    assert not disagreements(stage)
    # The training loop (or, when the whole package is listed as a folder, that folder).
    dropped = next(d for d in stage["deps"] if str(d).startswith("src/mtrec/training"))
    kept = [d for d in stage["deps"] if d != dropped]
    assert len(kept) == len(stage["deps"]) - 1
    problems = disagreements({**stage, "deps": kept})
    assert problems and all(p.startswith(f"missing dep {dropped}") for p in problems), problems
    # A listed file the stage never imports is reported too.
    problems = disagreements({**stage, "deps": [*stage["deps"], "src/mtrec/serving/service.py"]})
    assert any("serving/service.py" in p and "outside the closure" in p for p in problems)


def test_closure_counts_lazy_and_string_imports():
    """A function-level import and a module named in a string are part of the closure."""
    tree = ast.parse(
        "def f():\n"
        "    from mtrec.data import sequences\n"
        "    import mtrec.evaluation.metrics\n"
        "PLUGINS = ('mtrec.reward.alignment',)\n"
        "if TYPE_CHECKING:\n"
        "    import mtrec.serving.runtime\n"
    )
    found = imported_modules(tree, "mtrec.x", False)
    assert {
        "mtrec",
        "mtrec.data",
        "mtrec.data.sequences",
        "mtrec.evaluation",
        "mtrec.evaluation.metrics",
        "mtrec.reward",
        "mtrec.reward.alignment",
    } <= found
    assert "mtrec.serving.runtime" not in found


if __name__ == "__main__":  # print the exact code deps of every stage
    for stage_name, definition in stages().items():
        print(f"{stage_name}:")
        for dep in suggested_deps(stage_closure(definition)):
            print(f"  - {dep}")
