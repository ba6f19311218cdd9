"""Shared fixtures: paths to the benchmark data beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_file():
    """A function giving the path of a file in ../shared/data; the test skips when absent."""

    def find(name: str) -> Path:
        path = SHARED_DATA / name
        if not path.exists():
            pytest.skip(f"../shared/data/{name} not found: shared benchmark data absent")
        return path

    return find
