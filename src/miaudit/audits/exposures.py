"""Comparing exposure settings: which release is safe to ship?

For each exposure the audit ran every attack it allows; this module picks the strongest,
reports it next to the utility the exposure keeps, and lists the records that stay most
exposed, since a setting that lowers the average can leave individuals exposed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Records listed per exposure in the record-level view.
TOP_RECORDS = 10
#: A member counts as "exposed" when the strongest attack flags it at this FPR or lower.
EXPOSED_FPR = 0.01


#: Figures kept for every attack under every exposure (the full entries of the first
#: exposure are in ``summary.json``'s ``attacks``).
_PER_ATTACK = ("auc", "auc_ci", "tpr_at_fpr", "tpr_at_fpr_ci", "epsilon_lower_bound",
               "queries_to_target")


def strongest_attack(entries: dict[str, dict], fprs: list[str]) -> str | None:
    """The attack with the highest TPR at the lowest FPR level at which any attack's TPR is
    measurable; ties (and exposures where none is measurable) go to the higher AUC."""
    if not entries:
        return None
    levels = sorted(fprs, key=float)
    decisive = next((f for f in levels
                     if any(e["tpr_at_fpr"].get(f) is not None for e in entries.values())),
                    None)

    def key(name: str) -> tuple[float, float]:
        e = entries[name]
        tpr = e["tpr_at_fpr"].get(decisive) if decisive else None
        return (-1.0 if tpr is None else tpr, e["auc"])

    return max(entries, key=key)


def record_risk(scores: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    """Per record, the share of non-members the attack scores lower (ties count half):
    ``1 - risk`` is the FPR of the threshold that just flags the record. A member with
    risk 0.999 is caught at a 0.1% false-positive rate."""
    scores = np.asarray(scores, dtype=np.float64)
    outs = np.sort(scores[~is_member])
    below = np.searchsorted(outs, scores, side="left")
    upto = np.searchsorted(outs, scores, side="right")
    return (below + 0.5 * (upto - below)) / max(len(outs), 1)


def _risk_table(table: pd.DataFrame, attack: str) -> pd.DataFrame:
    """The member rows of a score table with their risk under ``attack``."""
    parts = []
    for _, rows in table.groupby("target", sort=True):
        member = rows["is_member"].to_numpy(bool)
        risk = record_risk(rows[attack].to_numpy(), member)
        parts.append(rows.assign(risk=risk)[member])
    return pd.concat(parts, ignore_index=True)


def compare_exposures_section(entries: dict[str, dict], accuracy: dict[str, dict],
                              tables: dict[str, pd.DataFrame], descriptions: dict[str, str],
                              *, fprs: list[str]) -> dict:
    """The ``exposures`` section of ``summary.json`` (also written as ``exposures.json``).

    Parameters
    ----------
    entries : dict
        Per exposure, the attacks' summary entries (as in ``summary["attacks"]``).
    accuracy : dict
        Per exposure, the train and test accuracy of the labels it releases.
    tables : dict
        Per exposure, the score table (``target``, ``record_id``, ``is_member``, one column
        per attack).
    descriptions : dict
        Per exposure, what it releases in plain words.
    """
    rows, records, exposed_sets = [], {}, []
    for name, attacks in entries.items():
        best = strongest_attack(attacks, fprs)
        e = attacks[best]
        risk = _risk_table(tables[name], best)
        exposed = risk["risk"] >= 1 - EXPOSED_FPR
        exposed_sets.append(set(zip(risk["target"][exposed], risk["record_id"][exposed],
                                    strict=True)))
        top = risk.sort_values(["risk", best], ascending=False).head(TOP_RECORDS)
        records[name] = [{"record_id": str(r["record_id"]), "target": int(r["target"]),
                          "fingerprint": r["fingerprint"], "risk": float(r["risk"]),
                          "score": float(r[best])}
                         for r in top.to_dict("records")]
        rows.append({
            "exposure": name,
            "description": descriptions[name],
            "strongest_attack": best,
            "auc": e["auc"], "auc_ci": e["auc_ci"],
            "tpr_at_fpr": e["tpr_at_fpr"], "tpr_at_fpr_ci": e["tpr_at_fpr_ci"],
            "epsilon_lower_bound": e["epsilon_lower_bound"],
            "queries_to_target": e.get("queries_to_target"),
            "attacks_run": sorted(attacks),
            "attacks": {a: {k: attacks[a].get(k) for k in _PER_ATTACK} for a in attacks},
            "members_exposed": int(exposed.sum()),
            "members": len(risk),
            **{k: v for k, v in accuracy[name].items()},
        })
    everywhere = set.intersection(*exposed_sets) if exposed_sets else set()
    return {
        "criterion": ("strongest attack: highest TPR at the lowest measurable FPR level, "
                      "ties to the higher AUC"),
        "utility_note": ("Post-processing that keeps the top label (logits, probabilities, "
                         "top-k, label, temperature, memguard) leaves accuracy unchanged; "
                         "rounding can create ties and noise can change labels, so the "
                         "accuracy of the released labels is measured for every exposure."),
        "risk_note": (f"risk of a member = share of non-members the strongest attack scores "
                      f"lower; 'exposed' = risk >= {1 - EXPOSED_FPR:g} (caught at "
                      f"{100 * EXPOSED_FPR:g}% FPR)"),
        "table": rows,
        "records_at_risk": records,
        "exposed_under_every_exposure": {
            "count": len(everywhere),
            "examples": [{"target": int(t), "record_id": str(r)}
                         for t, r in sorted(everywhere)[:TOP_RECORDS]],
        },
    }
