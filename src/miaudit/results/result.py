"""The result of an audit and how it is written to a run folder."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from miaudit.errors import ConfigError
from miaudit.results.folder import (
    EXPOSURES_FILE,
    RUN_FILES,
    SCORES_FILE,
    SIGNALS_FILE,
    SUMMARY_FILE,
    umask,
)


@dataclass(frozen=True)
class Figure:
    """One reported figure: its value with its interval, or why it has none.

    Attributes
    ----------
    value : float or None
        None when the figure cannot be measured on this sample (``reason`` says why).
    interval : (float, float) or None
        The confidence interval at the audit's level, where one is reported.
    reason : str or None
        Why ``value`` is None.
    note : str or None
        A caveat of a measured value (for example an upward bias at a low FPR level).
    """

    value: float | None
    interval: tuple[float, float] | None = None
    reason: str | None = None
    note: str | None = None

    @property
    def measured(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class AttackReport:
    """One attack's entry of ``summary.json``, typed (:attr:`AuditResult.attacks`).

    Attributes
    ----------
    name, description, reference : str
        The attack, one line on it, and its paper.
    knowledge : tuple of str
        What the attacker knows besides the target's release (``references``,
        ``population``, ``queries``, ``known-members``).
    auc : Figure
    tpr_at_fpr : dict of float to Figure
        By FPR level (0.01, 0.001, ...).
    epsilon_lower_bound : Figure
        The one-run bound (``reason`` when none is valid or measurable).
    advantage, balanced_accuracy : float
    n_members, n_non_members : int
    """

    name: str
    description: str
    reference: str
    knowledge: tuple[str, ...]
    auc: Figure
    tpr_at_fpr: dict[float, Figure]
    epsilon_lower_bound: Figure
    advantage: float
    balanced_accuracy: float
    n_members: int
    n_non_members: int

    @classmethod
    def from_entry(cls, name: str, entry: Mapping[str, Any]) -> AttackReport:
        """Build the report from an attack entry of ``summary.json``."""
        undefined = entry.get("undefined") or {}
        cis = entry.get("tpr_at_fpr_ci") or {}
        notes = entry.get("tpr_at_fpr_note") or {}

        def pair(ci) -> tuple[float, float] | None:
            return None if ci is None else (float(ci[0]), float(ci[1]))

        tpr = {float(f): Figure(v, pair(cis.get(f)), undefined.get(f"tpr_at_fpr.{f}"),
                                notes.get(f))
               for f, v in (entry.get("tpr_at_fpr") or {}).items()}
        return cls(
            name=name, description=str(entry.get("description", "")),
            reference=str(entry.get("reference", "")),
            knowledge=tuple(entry.get("knowledge") or ()),
            auc=Figure(entry.get("auc"), pair(entry.get("auc_ci")), undefined.get("auc")),
            tpr_at_fpr=tpr,
            epsilon_lower_bound=Figure(entry.get("epsilon_lower_bound"), None,
                                       undefined.get("epsilon_lower_bound"),
                                       entry.get("epsilon_method")),
            advantage=_number(entry.get("advantage")),
            balanced_accuracy=_number(entry.get("balanced_accuracy")),
            n_members=int(entry.get("n_members", 0)),
            n_non_members=int(entry.get("n_non_members", 0)),
        )


@dataclass(frozen=True)
class VerdictReport:
    """The audit's verdict, typed (:attr:`AuditResult.verdict`): ``level`` (``none``,
    ``low``, ``moderate``, ``high``), the ``strongest_attack`` it rests on (None when no
    attack was eligible), the ``sentence`` the report shows, and whether the corrected
    interval excludes chance (``significant``)."""

    level: str
    strongest_attack: str | None
    sentence: str
    significant: bool


class AuditResult:
    """What :func:`miaudit.audit` returns.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per exposure, target model and audited record: ``exposure``, ``target``,
        ``record_id``, ``fingerprint``, ``is_member``, ``label`` and one column per attack
        (higher = more likely a member; empty where the exposure did not allow it).
    metrics : dict
        :class:`~miaudit.metrics.AttackMetrics` per attack, pooled over targets (with the
        ROC arrays), under the first exposure.
    exposure_metrics : dict
        The same per exposure (when several were compared, ``summary()["exposures"]``
        holds the comparison).
    artifacts : dict
        Further files of the run folder by name (bytes), such as a language-model audit's
        ``canary_exposure.png``.
    signals : dict
        The raw material to recompute any attack: ``membership`` (models x records, bool),
        ``logits`` (models x records x classes, float32; log-probabilities when the model
        gave probabilities), ``labels`` and ``record_ids``.
    """

    def __init__(self, *, summary: dict, scores: pd.DataFrame, metrics: dict,
                 signals: dict | None = None, exposure_metrics: dict | None = None,
                 artifacts: dict[str, bytes] | None = None) -> None:
        self._summary = json_ready(summary)
        self.scores = scores
        self.metrics = metrics
        self.signals = signals or {}
        self.exposure_metrics = exposure_metrics or {summary.get("exposure"): metrics}
        self.artifacts = artifacts or {}
        unknown = set(self.artifacts) - RUN_FILES
        if unknown:
            raise ConfigError(f"Not a run-folder file: {sorted(unknown)[0]!r}.")

    def __repr__(self) -> str:
        names = ", ".join(self.metrics)
        return f"AuditResult({len(self.scores)} records; attacks: {names})"

    def summary(self) -> dict:
        """The content of ``summary.json`` (JSON-ready: plain floats, ``None`` for undefined)."""
        return self._summary

    @property
    def attacks(self) -> dict[str, AttackReport]:
        """Each attack's figures (under the first exposure), typed: values, intervals and
        the reasons of the unmeasurable ones, as in ``summary()["attacks"]``."""
        return {name: AttackReport.from_entry(name, entry)
                for name, entry in self._summary.get("attacks", {}).items()}

    @property
    def verdict(self) -> VerdictReport | None:
        """The verdict of ``summary()["verdict"]``, typed; None when the audit has none."""
        v = self._summary.get("verdict")
        if not v:
            return None
        return VerdictReport(str(v["level"]), v.get("strongest_attack"), str(v["sentence"]),
                             bool(v.get("significant", False)))

    def save(self, out_dir: str | os.PathLike, *, overwrite: bool = False,
             report: bool = True) -> Path:
        """Write ``summary.json``, ``scores.parquet``, ``signals.npz``, the self-contained
        ``report.html`` (unless ``report=False``) and, when exposures were compared,
        ``exposures.json`` into ``out_dir`` atomically.

        Files are written into a temporary sibling folder which is renamed into place
        at the end, so an interrupted or failed save never leaves a half-written folder.
        """
        out = Path(out_dir).resolve()
        check_out_dir(out, overwrite=overwrite)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            tmp.chmod(0o777 & ~umask())
            text = json.dumps(self._summary, indent=2, allow_nan=False)
            (tmp / SUMMARY_FILE).write_text(text + "\n", encoding="utf-8")
            if "exposures" in self._summary:
                text = json.dumps(self._summary["exposures"], indent=2, allow_nan=False)
                (tmp / EXPOSURES_FILE).write_text(text + "\n", encoding="utf-8")
            self.scores.to_parquet(tmp / SCORES_FILE, index=False)
            if self.signals:
                np.savez_compressed(tmp / SIGNALS_FILE, **self.signals)
            for name, content in self.artifacts.items():
                (tmp / name).write_bytes(content)
            if report:
                from miaudit.report.html import render_html_from
                from miaudit.results.folder import describe_signals

                page = render_html_from(self._summary, self.scores, source=out.name,
                                        signals_info=describe_signals(self.signals))
                (tmp / "report.html").write_text(page, encoding="utf-8")
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


def _number(value: Any) -> float:
    """A figure of summary.json as a float: nan where it is undefined (null or absent)."""
    return float("nan") if value is None else float(value)


def json_ready(summary: dict) -> dict:
    """The summary with every value JSON can hold: numpy scalars and arrays as plain
    numbers and lists, and each infinite or NaN number as ``null``, listed under
    ``undefined_values`` (its place, what it was, why it is null), so that summary.json is
    valid JSON that no reader takes for a figure."""
    found: list[dict] = []

    def clean(value: Any, path: str) -> Any:
        if isinstance(value, Mapping):
            return {k: clean(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, np.ndarray):
            return clean(value.tolist(), path)
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            found.append({"path": path, "value": str(value),
                          "reason": "not a finite number: undefined here, written as null"})
            return None
        return value

    out = clean(summary, "")
    if found:
        out["undefined_values"] = [*out.get("undefined_values", []), *found]
    return out


def check_out_dir(out: Path, *, overwrite: bool) -> None:
    """Refuse an output folder that cannot be written, or that exists and is not empty
    (with ``overwrite``: that holds anything but a previous run's files)."""
    out = Path(out).resolve()
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise ConfigError(f"Cannot write the run folder {out}: {parent} is a file.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"The output path {out} exists and is not a folder.")
    if not out.exists():
        return
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not overwrite:
        raise ConfigError(f"The output folder {out} already exists and is not empty; "
                          "choose another --out or pass --overwrite.")
    foreign = [e for e in entries if e not in RUN_FILES]
    if foreign:
        raise ConfigError(f"Refusing to overwrite {out}: it holds files that are not a miaudit"
                          f" run's (e.g. {foreign[0]!r}); choose another --out.")
