"""benchmarks/code_shape.py on a small made-up source tree (no git needed)."""

import importlib

import helpers  # noqa: F401  (puts benchmarks/ on sys.path)
import pytest


@pytest.fixture(scope="module")
def code_shape():
    return importlib.import_module("code_shape")


SOURCES = {
    "src/mtrec/__init__.py": "",
    "src/mtrec/serving/__init__.py": "",
    "src/mtrec/serving/runtime.py": (
        "from mtrec.reward.inference import read\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from mtrec.reward import train\n"
        "\n"
        "class Runtime:\n"
        "    def answer(self):\n"
        "        from mtrec.reward.readout import helper\n"
        "        return helper()\n"
    ),
    "src/mtrec/reward/__init__.py": "X = 1\n",
    "src/mtrec/reward/inference.py": "# pure\n\ndef read():\n    return 1\n",
    "src/mtrec/reward/readout.py": "from . import train\n\ndef helper():\n    return train.fit()\n",
    "src/mtrec/reward/train.py": "def fit():\n    a = 1\n    b = 2\n    return a + b\n",
}


def test_edges_lazy_imports_and_serving_closures(code_shape):
    shape = code_shape.shape(SOURCES)
    edges = {(e["source"], e["target"]): e["lazy"] for e in shape["edges"]}
    assert edges == {
        ("mtrec.serving.runtime", "mtrec.reward.inference"): False,
        ("mtrec.serving.runtime", "mtrec.reward.readout"): True,  # inside a method
        ("mtrec.reward.readout", "mtrec.reward.train"): False,  # relative import resolved
    }  # the TYPE_CHECKING import never runs
    serving = shape["serving"]
    assert serving["at_import"]["reward_modules"] == ["mtrec.reward", "mtrec.reward.inference"]
    assert serving["when_serving"]["reward_modules"] == [
        "mtrec.reward",
        "mtrec.reward.inference",
        "mtrec.reward.readout",
        "mtrec.reward.train",
    ]
    # 13 lines; code: 1 + 2 (a comment and a blank line skipped) + 3 + 4
    assert shape["packages"]["mtrec.reward"] == {"modules": 4, "lines": 13, "code_lines": 10}
    longest = shape["longest_functions"][0]
    assert longest == {"name": "mtrec.reward.train:fit", "lines": 4}
    assert {"name": "mtrec.serving.runtime:Runtime.answer", "lines": 3} in shape[
        "longest_functions"
    ]
