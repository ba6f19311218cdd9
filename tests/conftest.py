"""Shared fixtures: paths to the benchmark data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# The default suite draws the same examples on every run (a red CI run is a real change,
# never a lucky draw); HYPOTHESIS_PROFILE=explore draws new ones, ten times as many, to
# look for inputs that escape (add each one found as an @example).
settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_model_cache(tmp_path_factory):
    """The CLI caches models under $MIAUDIT_CACHE: keep the tests' models out of ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MIAUDIT_CACHE", str(tmp_path_factory.mktemp("model-cache")))
    # and the runs they record out of the user's registry
    mp.setenv("MIAUDIT_REGISTRY", f"sqlite:///{tmp_path_factory.mktemp('registry')}/r.db")
    yield
    mp.undo()


@pytest.fixture
def shared_file():
    """A function giving the path of a file in ../shared/data; the test skips when absent."""

    def find(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.skip(f"../shared/data/{name} not found: shared benchmark data absent")
        return path

    return find
