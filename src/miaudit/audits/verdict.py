"""The audit's verdict: is there measurable leakage, corrected for picking the strongest?

An audit runs many attacks and the headline quotes the strongest. Testing that attack with
its own 95% interval would let chance win about once per attack on a model that cannot
leak, so the verdict tests every eligible attack at a Bonferroni-corrected level: with
``k`` attacks and ``L`` measurable FPR levels, each attack gets two-sided intervals at
``1 - alpha_c`` with ``alpha_c = 2 alpha / (k (1 + L))``, and shows leakage when the lower
end of its AUC interval exceeds 0.5 or the lower end of its TPR interval at some level
``f`` exceeds ``f``. Each lower end is a one-sided test at ``alpha_c / 2``, so on a null
model the chance that any of the ``k (1 + L)`` tests fires is at most ``alpha``. The
headline quotes "N times a random guess" only at a level whose corrected interval
excludes chance (the lowest such level).

Eligible attacks are those whose knowledge the audit's threat model grants: never an
attack that reads the membership of other audited records (``known-members``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from miaudit.audits.exposures import strongest_attack
from miaudit.errors import UndefinedMetricWarning
from miaudit.metrics import evaluate

#: The verdict levels, from "cannot tell members apart" to "identifies many members".
LEVEL_NAMES = ("none", "low", "moderate", "high")
#: A TPR this many times the FPR (or this AUC) makes the exposure high / moderate.
HIGH_RATIO, HIGH_AUC = 10.0, 0.8
MODERATE_RATIO, MODERATE_AUC = 2.0, 0.6


def _pct(x: float) -> str:
    v = 100 * x
    return f"{v:.3g}%" if v < 10 else f"{v:.1f}%"


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"


def audit_verdict(entries: Mapping[str, dict], scores: Mapping[str, np.ndarray],
                  is_member: np.ndarray, *, exposure: str, fprs: list[str], alpha: float,
                  clusters: np.ndarray | None = None) -> dict:
    """The verdict of an audit: ``level``, ``strongest_attack``, ``sentence`` and how it
    was corrected.

    Parameters
    ----------
    entries : dict of attack name to summary entry
        The attacks' summary entries (with ``knowledge``, ``auc``, ``tpr_at_fpr``).
    scores : dict of attack name to ndarray (n,)
        Each attack's scores (pooled over targets), higher = member.
    is_member : bool ndarray (n,)
    exposure : str
    fprs : list of str
        The FPR levels (summary keys).
    alpha : float
        Error rate of the verdict.
    clusters : int ndarray (n,), optional
        Record index of each score when targets are pooled.

    Returns
    -------
    dict
        ``level`` (one of :data:`LEVEL_NAMES`), ``strongest_attack`` (None when no attack is
        eligible), ``sentence``, ``fpr`` (the level it quotes), ``attacks_considered``,
        ``attacks_excluded`` (name -> reason), ``correction`` and ``corrected_alpha``,
        ``significant`` (attacks whose corrected intervals exclude chance) and
        ``corrected_ci`` of the strongest attack (``auc``, and ``tpr`` per level).
    """
    eligible = {n: e for n, e in entries.items() if "known-members" not in e.get("knowledge", [])}
    excluded = {n: "uses the membership of other audited records (oracle knowledge)"
                for n in entries if n not in eligible}
    base = {"attacks_considered": sorted(eligible), "attacks_excluded": excluded,
            "alpha": alpha}
    if not eligible:
        return {**base, "level": "none", "strongest_attack": None, "fpr": None,
                "sentence": f"Under exposure '{exposure}' no attack within the threat model "
                            "ran.", "significant": [], "corrected_alpha": None,
                "correction": None, "corrected_ci": None}
    k = len(eligible)
    measurable = [f for f in sorted(fprs, key=float)
                  if any(e["tpr_at_fpr"].get(f) is not None for e in eligible.values())]
    alpha_c = 2 * alpha / (k * (1 + len(measurable)))
    significant, cis, beyond = [], {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for name in eligible:
            extra = {} if clusters is None else {"clusters": clusters}
            m = evaluate(scores[name], is_member, fprs=[float(f) for f in measurable] or
                         [float(f) for f in fprs], alpha=alpha_c, **extra).to_dict()
            tpr_cis = {f: m["tpr_at_fpr_ci"].get(f) for f in measurable}
            beyond[name] = [f for f in measurable
                            if tpr_cis[f] and tpr_cis[f][0] > float(f)]
            cis[name] = {"auc": m["auc_ci"], "tpr": tpr_cis}
            if (m["auc_ci"] and m["auc_ci"][0] > 0.5) or beyond[name]:
                significant.append(name)
    best = strongest_attack(eligible, fprs)
    # the headline attack: the strongest one whose leakage is established, if any
    if significant and best not in significant:
        best = strongest_attack({n: eligible[n] for n in significant}, fprs)
    e = eligible[best]
    auc = float(e["auc"])
    # the level quoted: the lowest whose corrected interval excludes chance, else the
    # lowest measurable one
    quoted = beyond[best][0] if beyond[best] else (measurable[0] if measurable else None)
    tpr_beyond = bool(beyond[best])
    tpr = e["tpr_at_fpr"].get(quoted) if quoted else None
    ratio = (tpr / float(quoted)) if (tpr is not None and quoted) else 0.0
    conf = f"{100 * (1 - alpha):g}%"
    correction = (f"Bonferroni over {k} attack(s) and {1 + len(measurable)} figures each "
                  f"(AUC and the TPR at each measurable FPR): intervals at "
                  f"{100 * (1 - alpha_c):.4g}%, so the verdict errs on a null model with "
                  f"probability <= {alpha:g}")
    if best not in significant:
        level = "none"
        sentence = (f"Under exposure '{exposure}' no attack tells members from non-members "
                    f"beyond chance: every one of the {k} attack(s) stays within its "
                    f"{conf} interval corrected for choosing the strongest (the strongest, "
                    f"{best}, has AUC {auc:.3f}).")
    else:
        if (ratio >= HIGH_RATIO and tpr_beyond) or auc >= HIGH_AUC:
            level = "high"
        elif (ratio >= MODERATE_RATIO and tpr_beyond) or auc >= MODERATE_AUC:
            level = "moderate"
        else:
            level = "low"
        if tpr_beyond and tpr:
            sentence = (f"Under exposure '{exposure}' the strongest attack ({best}) "
                        f"identifies {_pct(tpr)} of members at a {_pct(float(quoted))} "
                        f"false-positive rate, {_times(ratio)} times a random guess "
                        f"(AUC {auc:.3f}).")
        else:
            sentence = (f"Under exposure '{exposure}' the strongest attack ({best}) tells "
                        f"members from non-members better than chance (AUC {auc:.3f}); at "
                        "low false-positive rates it is not distinguishable from a random "
                        "guess.")
    return {**base, "level": level, "strongest_attack": best, "fpr": quoted,
            "sentence": sentence, "significant": sorted(significant),
            "corrected_alpha": alpha_c, "correction": correction,
            "corrected_ci": cis[best]}
