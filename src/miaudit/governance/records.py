"""Record-level exposure of a run's members, as in the exposure comparison."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from miaudit.audits.exposures import record_risk, strongest_attack
from miaudit.errors import DataError

__all__ = ["member_risks"]


def member_risks(summary: dict, scores: pd.DataFrame,
                 attacks: Sequence[str] | None = None) -> tuple[str, pd.DataFrame]:
    """The strongest attack of a run and every member's risk under it.

    The attack is chosen by :func:`~miaudit.audits.exposures.strongest_attack`
    (highest TPR at the lowest measurable FPR level, ties to the higher AUC) among
    ``attacks`` (default: all of ``summary["attacks"]``); the risk of a member is
    :func:`~miaudit.audits.exposures.record_risk` (share of non-members scored
    lower), computed per target model on the rows of the run's first exposure.

    Parameters
    ----------
    summary : dict
        The content of ``summary.json``.
    scores : pandas.DataFrame
        The content of ``scores.parquet``.
    attacks : sequence of str, optional
        Attack names to choose from.

    Returns
    -------
    attack : str
    members : pandas.DataFrame
        The member rows with a ``risk`` column, most exposed first (ties: higher score).
    """
    entries = summary["attacks"]
    names = list(entries) if attacks is None else list(attacks)
    if not names:
        raise DataError("The run has no attacks: there is no record-level risk to compute.")
    fprs = sorted({k for n in names for k in entries[n].get("tpr_at_fpr", {})}, key=float)
    best = strongest_attack({n: entries[n] for n in names}, fprs)
    table = scores
    if "exposure" in table.columns and summary.get("exposure") is not None:
        table = table[table["exposure"] == summary["exposure"]]
    if best not in table.columns or table.empty:
        raise DataError(f"scores.parquet has no scores of the attack {best!r} under the "
                        f"exposure {summary.get('exposure')!r}; is it from the same run?")
    table = table[table[best].notna()]
    groups = table.groupby("target", sort=True) if "target" in table.columns else [(0, table)]
    parts = []
    for _, rows in groups:
        member = rows["is_member"].to_numpy(bool)
        risk = record_risk(rows[best].to_numpy(np.float64), member)
        parts.append(rows.assign(risk=risk)[member])
    members = pd.concat(parts, ignore_index=True)
    members = members.sort_values(["risk", best], ascending=False, kind="stable")
    return best, members.reset_index(drop=True)
