"""The result of an audit and how it is written to a run folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from miaudit.errors import ConfigError

SUMMARY_FILE = "summary.json"
SCORES_FILE = "scores.parquet"


class AuditResult:
    """What :func:`miaudit.audit` returns.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per audited record: ``record_id``, ``fingerprint``, ``is_member``,
        ``label`` and one column per attack (higher = more likely a member).
    metrics : dict
        :class:`~miaudit.metrics.AttackMetrics` per attack (with the ROC arrays).
    """

    def __init__(self, *, summary: dict, scores: pd.DataFrame, metrics: dict) -> None:
        self._summary = summary
        self.scores = scores
        self.metrics = metrics

    def __repr__(self) -> str:
        names = ", ".join(self.metrics)
        return f"AuditResult({len(self.scores)} records; attacks: {names})"

    def summary(self) -> dict:
        """The content of ``summary.json`` (JSON-ready: plain floats, ``None`` for undefined)."""
        return self._summary

    def save(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``summary.json`` and ``scores.parquet`` into ``out_dir`` atomically.

        Files are written into a temporary sibling folder which is renamed into place
        at the end, so an interrupted or failed save never leaves a half-written folder.
        """
        out = Path(out_dir)
        check_out_dir(out, overwrite=overwrite)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            tmp.chmod(0o777 & ~_umask())
            text = json.dumps(self._summary, indent=2, allow_nan=False)
            (tmp / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")
            self.scores.to_parquet(tmp / SCORES_FILE, index=False)
            if out.exists():
                trash = out.with_name(f".{out.name}.old-{os.getpid()}")
                out.rename(trash)
                tmp.rename(out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an output folder that exists and is not empty, unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"The output path {out} exists and is not a folder.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"The output folder {out} already exists and is not empty; "
                          "choose another --out or pass --overwrite.")
