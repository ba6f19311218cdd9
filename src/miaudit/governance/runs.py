"""Finding and reading a run folder (``summary.json`` and ``scores.parquet``).

Commands that take a RUN accept a run folder; :func:`set_run_resolver` plugs in a function
that turns anything else (a run ID of a registry) into a folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from miaudit.errors import DataError

__all__ = ["load_run", "resolve_run", "set_run_resolver"]

_resolver: Callable[[str], Path] | None = None


def set_run_resolver(fn: Callable[[str], Path] | None) -> None:
    """Let RUN arguments name runs by ID: ``fn(text) -> run folder``.

    The resolver is asked only when ``text`` is not an existing folder; ``None`` removes it.
    It should raise a :class:`~miaudit.errors.MiauditError` for an unknown ID.
    """
    global _resolver
    _resolver = fn


def resolve_run(run: str | Path) -> Path:
    """The folder of a run: ``run`` itself when it is a folder, else what the resolver gives.

    Raises
    ------
    DataError
        When no folder is found, or the folder holds no ``summary.json``.
    """
    path = Path(run)
    if not path.is_dir():
        if _resolver is None:
            raise DataError(f"Run folder not found: {run} (give the folder a 'miaudit run "
                            "--out' wrote).")
        path = Path(_resolver(str(run)))
    if not (path / "summary.json").is_file():
        raise DataError(f"{path} is not a miaudit run folder: it has no summary.json.")
    return path


def load_run(run_dir: str | Path, *, scores: bool = True) -> tuple[dict, object | None]:
    """Read a run folder.

    Parameters
    ----------
    run_dir : str or Path
        A folder written by :meth:`~miaudit.AuditResult.save`.
    scores : bool, default True
        Also read ``scores.parquet`` (None when the folder has none).

    Returns
    -------
    summary : dict
        The content of ``summary.json``.
    table : pandas.DataFrame or None
        The score table.
    """
    path = Path(run_dir)
    summary_file = path / "summary.json"
    if not summary_file.is_file():
        raise DataError(f"{path} is not a miaudit run folder: it has no summary.json.")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {summary_file}: {exc}") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("attacks"), dict):
        raise DataError(f"{summary_file} has no 'attacks' section; is it a miaudit summary?")
    table = None
    scores_file = path / "scores.parquet"
    if scores and scores_file.is_file():
        import pandas as pd

        try:
            table = pd.read_parquet(scores_file)
        except Exception as exc:  # any reader error becomes one line
            raise DataError(f"Cannot read {scores_file}: {exc}") from None
    return summary, table
