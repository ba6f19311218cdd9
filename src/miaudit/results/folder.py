"""The run folder: the files an audit writes (``summary.json``, ``scores.parquet``,
``signals.npz``, ...) and the one reader of them that the report, governance, specs and the
command line share. :meth:`miaudit.AuditResult.save` writes them."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miaudit.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EXPOSURES_FILE", "RUN_FILES", "SCORES_FILE", "SIGNALS_FILE", "SUMMARY_FILE",
           "RunFolder", "check_run_folder", "describe_signals", "load_run",
           "write_text_file"]

SUMMARY_FILE = "summary.json"
SCORES_FILE = "scores.parquet"
SIGNALS_FILE = "signals.npz"
EXPOSURES_FILE = "exposures.json"
#: The files a run folder may hold; --overwrite replaces only folders made of these.
RUN_FILES = frozenset({SUMMARY_FILE, SCORES_FILE, SIGNALS_FILE, EXPOSURES_FILE, "report.html",
                       "report.md", "canary_exposure.png", "sweep.png"})


@dataclass(frozen=True)
class RunFolder:
    """What :func:`load_run` read.

    Attributes
    ----------
    path : Path
    summary : dict
        ``summary.json``.
    scores : pandas.DataFrame or None
        ``scores.parquet``; None when it was not asked for or (optional) is absent.
    signals : str or None
        One line on ``signals.npz`` (:func:`describe_signals`), when asked for.
    """

    path: Path
    summary: dict
    scores: pd.DataFrame | None = None
    signals: str | None = None


def check_run_folder(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path, once it is known to be a run folder.

    Raises
    ------
    ConfigError
        When the folder does not exist, or holds no ``summary.json``.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise ConfigError(f"Run folder not found: {run_dir} (give the folder a 'miaudit run "
                          "--out' wrote).")
    if not (path / SUMMARY_FILE).is_file():
        raise ConfigError(f"{path} is not a miaudit run folder: it has no {SUMMARY_FILE}.")
    return path


def load_run(run_dir: str | os.PathLike, *, scores: str = "required",
             signals: bool = False) -> RunFolder:
    """Read a run folder written by :meth:`~miaudit.AuditResult.save`.

    Parameters
    ----------
    run_dir : path
    scores : {"required", "optional", "skip"}, default "required"
        Read ``scores.parquet``: an error when it is missing, None when it is missing, or
        not at all.
    signals : bool, default False
        Describe ``signals.npz`` (:func:`describe_signals`).

    Raises
    ------
    ConfigError
        Not a run folder (:func:`check_run_folder`).
    DataError
        A file that cannot be read, or a summary without its ``attacks`` section.
    """
    if scores not in ("required", "optional", "skip"):
        raise ConfigError(f"scores must be 'required', 'optional' or 'skip', got {scores!r}.")
    run = check_run_folder(run_dir)
    path = run / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read {path}: {exc}.") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("attacks"), dict):
        raise DataError(f"{path} has no 'attacks' section; is it a miaudit summary?")
    table = None
    spath = run / SCORES_FILE
    if scores == "required" and not spath.is_file():
        raise DataError(f"{run} has no {SCORES_FILE}: the per-record scores are needed.")
    if scores != "skip" and spath.is_file():
        import pandas as pd

        try:
            table = pd.read_parquet(spath)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"Cannot read {spath}: {exc}.") from None
    info = None
    npz = run / SIGNALS_FILE
    if signals and npz.is_file():
        import numpy as np

        try:
            with np.load(npz, allow_pickle=False) as z:
                info = describe_signals({k: z[k] for k in z.files if k == "membership"})
        except (OSError, ValueError):
            info = f"{SIGNALS_FILE} could not be read."
    return RunFolder(run, summary, table, info)


def describe_signals(signals: Mapping[str, Any] | None) -> str | None:
    """One line on ``signals.npz`` (models and records of its membership design) for the
    report's method section; None without a ``membership`` array."""
    if not signals or "membership" not in signals:
        return None
    shape = getattr(signals["membership"], "shape", ())
    if len(shape) != 2:
        return None
    return (f"signals.npz holds the raw outputs of {shape[0]} model(s) on {shape[1]} records "
            "and their membership, from which every attack can be recomputed.")


def write_text_file(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to the file ``path`` atomically (a reader never sees half of it),
    with the usual permissions; a folder or a missing parent folder is refused."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Cannot write {path}: it is a folder; give a file name.")
    if not path.parent.is_dir():
        raise ConfigError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def umask() -> int:
    """The process's file-creation mask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
