"""The examples in docstrings and in the README run as written."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import miaudit

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(miaudit.__path__, prefix="miaudit.")
    if m.name != "miaudit.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_all_lists_only_existing_names():
    for name in ["miaudit", *MODULES]:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            assert hasattr(module, attr), f"{name}.__all__ names missing {attr!r}"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})
    finally:  # the MLflow example sets the process's tracking store: not for other tests
        if "mlflow" in sys.modules:
            sys.modules["mlflow"].set_tracking_uri(None)
    assert (tmp_path / "runs" / "digits" / "summary.json").exists()
