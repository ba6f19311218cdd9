"""What a report says, computed once from ``summary.json`` and the scores: the verdict,
key figures, threat model, records at risk, method and caveats (:func:`build_content`), and
how figures are written (:func:`format_figure`). :mod:`miaudit.report.html` lays it out as
a page, :mod:`miaudit.report.markdown` as Markdown."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from miaudit.errors import DataError

if TYPE_CHECKING:  # numpy, pandas and scipy load on first use: the CLI starts fast
    import pandas as pd

#: The attack whose score is a posterior probability of membership, shown per record
#: beside the rank-based risk when the run has it.
POSTERIOR_ATTACK = "privacy-risk"
#: Members listed in "records at risk".
TOP_RECORDS = 10
#: FPR at which members count as exposed and at which the per-class TPR is shown.
EXPOSED_FPR = 0.01
#: Attacks that use population data (records the target never saw) besides the target.
_POPULATION_ATTACKS = frozenset({"attack-p", "rmia-online", "rmia-offline"})
#: Columns of a score table that may hold a record's raw content (shown on request only).
RAW_COLUMNS = ("text", "raw")

LEVELS = {
    "none": "No measurable leakage",
    "low": "Low exposure",
    "moderate": "Moderate exposure",
    "high": "High exposure",
}


# -- formatting ----------------------------------------------------------------------------

def format_figure(value: float | None, kind: str = "auc") -> str:
    """Format one figure the way the report shows it (the single rounding rule).

    Parameters
    ----------
    value : float or None
        ``None`` (or NaN) is shown as ``n/a``.
    kind : {"auc", "acc", "pct", "fpr", "eps", "risk", "int"}, default "auc"
        ``auc`` and ``acc``: 3 decimals; ``pct``: percent with 1 decimal (TPR, PPV);
        ``fpr``: percent, 1 decimal from 1% on, else 2 significant digits; ``eps``: 2
        decimals; ``risk``: 4 decimals; ``int``: thousands separators.

    Examples
    --------
    >>> format_figure(0.96412), format_figure(0.2291, "pct"), format_figure(None, "pct")
    ('0.964', '22.9%', 'n/a')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    if kind in ("auc", "acc"):
        return f"{v:.3f}"
    if kind == "pct":
        return f"{100 * v:.1f}%"
    if kind == "fpr":
        return "0%" if v == 0 else f"{100 * v:.1f}%" if v >= 0.01 else f"{100 * v:.2g}%"
    if kind == "eps":
        return f"{v:.2f}"
    if kind == "risk":
        return f"{v:.4f}"
    if kind == "int":
        return f"{int(v):,}"
    raise ValueError(f"Unknown figure kind {kind!r}.")


def format_interval(ci: list[float] | tuple[float, float] | None, kind: str = "auc") -> str:
    """``[lo, hi]`` with :func:`format_figure`'s rounding; empty when there is none."""
    if ci is None:
        return ""
    return f"[{format_figure(ci[0], kind)}, {format_figure(ci[1], kind)}]"


def fpr_text(fpr: str | float) -> str:
    """An FPR level as a percentage: ``0.001`` -> ``0.1%``."""
    return f"{100 * float(fpr):g}%"


def _times(ratio: float) -> str:
    return f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"


# -- content -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """The headline: how exposed, under which exposure, compared with a random guess.

    Attributes
    ----------
    level : {"none", "low", "moderate", "high"}
    label : str
        The level in words ("High exposure").
    sentence : str
        One sentence with the strongest attack, its TPR at the lowest measurable FPR, the
        ratio to a random guess and its AUC.
    attack : str or None
        The strongest attack (None when no attack ran).
    fpr : str or None
        The FPR level (summary key) the sentence quotes; None when none is measurable.
    """

    level: str
    label: str
    sentence: str
    attack: str | None
    fpr: str | None


@dataclass
class ReportContent:
    """Everything the report says, as plain (unescaped) text and tables."""

    summary: dict
    scores: pd.DataFrame  # the first exposure's rows
    is_lm: bool
    exposure: str
    fprs: list[str]
    confidence: int
    verdict: Verdict
    key_figures: list[tuple[str, str, str, str]]  # (figure, value, interval, meaning)
    identity: list[tuple[str, str, bool]]  # (label, value, monospace)
    threat: list[str]
    records: pd.DataFrame | None
    records_note: str
    raw_columns: list[str]
    show_records: bool
    method: list[str]
    undefined: list[tuple[str, list[str]]]  # (reason, [figures, attacks])
    warnings: list[str]
    sweep: dict | None
    signals_info: str | None = None
    source: str | None = None
    notes: list[str] = field(default_factory=list)


def _fprs(summary: dict) -> list[str]:
    fprs = summary.get("settings", {}).get("fprs")
    if fprs:
        return [str(float(f)) for f in fprs]
    first = next(iter(summary["attacks"].values()), {})
    return sorted(first.get("tpr_at_fpr", {}), key=lambda f: -float(f))


def verdict(summary: dict) -> Verdict:
    """The headline verdict of a summary (see :class:`Verdict`).

    An audit's summary carries its own verdict (``summary["verdict"]``, from
    :func:`~miaudit.audits.verdict.audit_verdict`: oracle attacks left out, every
    attack tested at a Bonferroni-corrected level); that one is used. For summaries
    without it (older runs, language-model audits) the rule below applies, without a
    correction for choosing the strongest attack. The strongest attack is the one of
    :func:`~miaudit.audits.exposures.strongest_attack` (highest TPR at the lowest
    measurable FPR, ties to the higher AUC).
    The level is ``none`` unless the TPR interval lies above the FPR's upper
    Clopper-Pearson bound (the FPR is measured on the same non-members) or the AUC interval
    lies above 0.5; then ``high`` from 10 times a random guess (or AUC >= 0.8), ``moderate``
    from 2 times (or AUC >= 0.6), else ``low``.
    """
    from miaudit.audits.exposures import strongest_attack
    from miaudit.metrics import clopper_pearson, needed_non_members

    attacks = summary.get("attacks") or {}
    exposure = summary.get("exposure", "?")
    recorded = summary.get("verdict")
    if isinstance(recorded, dict) and recorded.get("level") in LEVELS:
        # the audit's own verdict, corrected for choosing the strongest attack
        return Verdict(recorded["level"], LEVELS[recorded["level"]], recorded["sentence"],
                       recorded.get("strongest_attack"), recorded.get("fpr"))
    if not attacks:
        return Verdict("none", LEVELS["none"], f"Under exposure '{exposure}' no attack ran.",
                       None, None)
    fprs = _fprs(summary)
    best = strongest_attack(attacks, fprs)
    e = attacks[best]
    decisive = next((f for f in sorted(fprs, key=float)
                     if any(a["tpr_at_fpr"].get(f) is not None for a in attacks.values())),
                    None)
    alpha = summary.get("settings", {}).get("alpha", 0.05)
    auc, auc_ci = e["auc"], e.get("auc_ci")
    auc_text = f"AUC {format_figure(auc)}"
    significant = bool(auc_ci and auc_ci[0] > 0.5)
    ratio = 0.0
    if decisive is None:
        n_out = e.get("n_non_members")
        top = max(fprs, key=float)
        sentence = (f"Under exposure '{exposure}' the strongest attack ({best}) reaches "
                    f"{auc_text}; its true-positive rate at low FPR is not measurable with "
                    f"{n_out if n_out is not None else 'so few'} non-members (at least "
                    f"{needed_non_members(float(top)):,} are needed for a {fpr_text(top)} "
                    "FPR).")
    else:
        tpr = e["tpr_at_fpr"].get(decisive) or 0.0
        ci = (e.get("tpr_at_fpr_ci") or {}).get(decisive)
        f = float(decisive)
        ratio = tpr / f
        # the TPR interval must clear the FPR's own upper bound: the FPR is measured on
        # the same non-members (floor(f * n) false positives at most)
        n_out = int(e.get("n_non_members") or 0)
        fpr_hi = clopper_pearson(math.floor(f * n_out + 1e-9), n_out, alpha)[1] if n_out else f
        significant = significant or bool(ci and ci[0] > fpr_hi)
        if tpr == 0:
            sentence = (f"Under exposure '{exposure}' no attack identifies any member at a "
                        f"{fpr_text(f)} false-positive rate; the strongest ({best}) reaches "
                        f"{auc_text}.")
        else:
            sentence = (f"Under exposure '{exposure}' the strongest attack ({best}) "
                        f"identifies {format_figure(tpr, 'pct')} of members at a "
                        f"{fpr_text(f)} false-positive rate, {_times(ratio)} times a random "
                        f"guess ({auc_text}).")
    if not significant:
        level = "none"
        sentence += (" This is within the uncertainty of a random guess "
                     f"({round(100 * (1 - alpha))}% intervals).")
    elif ratio >= 10 or auc >= 0.8:
        level = "high"
    elif ratio >= 2 or auc >= 0.6:
        level = "moderate"
    else:
        level = "low"
    return Verdict(level, LEVELS[level], sentence, best, decisive)


def _key_figures(summary: dict, v: Verdict, fprs: list[str]) -> list[tuple[str, str, str, str]]:
    if v.attack is None:
        return []
    e = summary["attacks"][v.attack]
    rows = [("AUC", format_figure(e["auc"]), format_interval(e.get("auc_ci")),
             "chance that a random member scores above a random non-member (0.5 = guess)")]
    for f in fprs:
        val = e["tpr_at_fpr"].get(f)
        reason = e.get("undefined", {}).get(f"tpr_at_fpr.{f}", "")
        meaning = (f"members flagged when {fpr_text(f)} of non-members are wrongly flagged "
                   f"(a random guess flags {fpr_text(f)})")
        rows.append((f"TPR at {fpr_text(f)} FPR", format_figure(val, "pct"),
                     format_interval((e.get("tpr_at_fpr_ci") or {}).get(f), "pct"),
                     meaning if val is not None else reason))
    if v.fpr is not None:
        ppv = (e.get("ppv_at_fpr") or {}).get(v.fpr)
        rows.append((f"PPV at {fpr_text(v.fpr)} FPR", format_figure(ppv, "pct"), "",
                     f"share of flagged records that are members, at a membership prior of "
                     f"{e.get('prior', summary.get('settings', {}).get('prior', 0.5)):g}"))
    rows.append(("Balanced accuracy", format_figure(e.get("balanced_accuracy"), "acc"), "",
                 "best (TPR + TNR) / 2 over thresholds"))
    rows.append(("Advantage", format_figure(e.get("advantage"), "acc"), "",
                 "best TPR - FPR over thresholds"))
    eps = e.get("epsilon_lower_bound")
    rows.append(("Epsilon lower bound", format_figure(eps, "eps"), "",
                 "no (eps, delta)-DP training could show this attack's error rates with a "
                 "smaller eps" if eps is not None
                 else e.get("undefined", {}).get("epsilon_lower_bound", "")))
    return rows


def _identity(summary: dict) -> list[tuple[str, str, bool]]:
    d, t, s = summary.get("data", {}), summary.get("target", {}), summary.get("settings", {})
    items: list[tuple[str, str, bool]] = []
    what = "texts" if summary.get("task") == "language model" else "records"
    parts = [f"{d.get('n_records', '?')} {what}"]
    if d.get("n_classes"):
        parts.append(f"{d['n_classes']} classes")
    if d.get("n_features"):
        parts.append(f"{d['n_features']} features")
    items.append(("Data", f"{d.get('name', '?')} ({', '.join(parts)})", False))
    if d.get("source"):
        items.append(("Source", str(d["source"]), False))
    items.append(("Data fingerprint", str(d.get("fingerprint") or "none (not computed)"),
                  True))
    items.append(("Target model", str(t.get("description") or t.get("model", "?")), False))
    if t.get("recipe"):
        items.append(("Recipe", json.dumps(t["recipe"], sort_keys=True), True))
    if "train_accuracy" in t:
        items.append(("Accuracy", f"train {format_figure(t.get('train_accuracy'), 'acc')}, "
                                  f"test {format_figure(t.get('test_accuracy'), 'acc')}", False))
    elif "member_mean_nll" in t:
        items.append(("Mean NLL per token", f"members {t['member_mean_nll']:.3f}, "
                                            f"non-members {t['non_member_mean_nll']:.3f}",
                      False))
    items.append(("Members / non-members",
                  f"{t.get('n_members', '?')} / {t.get('n_non_members', '?')}"
                  + (f" per target, {t['targets']} targets pooled" if t.get("targets") else ""),
                  False))
    if t.get("references"):
        items.append(("Reference models", f"{t['references']} per target "
                                          f"({t.get('reference_mode', 'online')})", False))
    seeds = f"audit seed {s.get('seed', '?')}"
    if t.get("seed") is not None:
        seeds += f", target seed {t['seed']}"
    items.append(("Seeds", seeds, False))
    items.append(("Exposure", str(summary.get("exposure", "?")), False))
    alpha = s.get("alpha", 0.05)
    items.append(("Intervals", f"{round(100 * (1 - alpha))}% (alpha {alpha:g}); membership "
                               f"prior {s.get('prior', 0.5):g}; delta {s.get('delta', 1e-5):g}",
                  False))
    items.append(("miaudit version", str(summary.get("miaudit_version", "?")), False))
    return items


def _exposure_description(summary: dict) -> str:
    exposure = str(summary.get("exposure", ""))
    if summary.get("task") == "language model":
        return "the log-probability the model gives to every token of each text"
    for row in (summary.get("exposures") or {}).get("table", []):
        if row.get("exposure") == exposure and row.get("description"):
            return str(row["description"])
    try:
        from miaudit.signals import parse_exposure

        return parse_exposure(exposure).description
    except Exception:  # an unknown setting: name it as it is
        return f"the outputs released under '{exposure}'"


def _threat(summary: dict) -> list[str]:
    from miaudit.attacks import ATTACKS

    t = summary.get("target", {})
    attacks = summary.get("attacks") or {}
    lm = summary.get("task") == "language model"
    items = [f"Sees: for each record it tests, {_exposure_description(summary)}."]
    queriers = [a for a in attacks if a in ATTACKS and ATTACKS[a].needs_queries]
    if queriers:
        sent = max((attacks[a].get("queries_to_target") or 0) for a in queriers)
        items.append(f"Queries: the label-only attacks ({', '.join(queriers)}) also query the "
                     f"target on perturbed copies of each record (up to {sent:,} queries per "
                     "attack).")
    if str(summary.get("exposure", "")).split(":")[0] in ("temperature", "noise", "memguard"):
        items.append("Knows the output defence and applies it to its own reference models.")
    items.append(f"Knows the {'texts' if lm else 'records'} it tests (their "
                 f"{'content' if lm else 'content and true label'}): the question is only "
                 "whether each was in the training set.")
    refs = t.get("references") or summary.get("settings", {}).get("references") or 0
    if refs:
        mode = t.get("reference_mode", "online")
        how = ("on random halves of the audited records, so about half of them trained on "
               "each record" if mode == "online" else
               "on separate population data, so none of them saw an audited record")
        kind = "reference language models" if lm else "reference models of the target's recipe"
        items.append(f"Trains {refs} {kind} {how} (the attacks that use them: "
                     + ", ".join(a for a in attacks if _uses_references(a)) + ").")
    else:
        items.append("Has no reference models: only reference-free attacks ran (attacks with "
                      "reference models are usually much stronger at low FPR).")
    knows = {a: e.get("knowledge") for a, e in attacks.items()}
    declared = all(k is not None for k in knows.values())
    pop = ([a for a, k in knows.items() if "population" in k] if declared
           else [a for a in attacks if a in _POPULATION_ATTACKS])
    if pop:
        n_pop = summary.get("data", {}).get("n_population_records")
        where = (f"{n_pop:,} records set aside from the audit, which the target never "
                 "trained on" if n_pop else "records the target never saw")
        items.append(f"Has population data from the same distribution ({', '.join(pop)}): "
                     f"{where}.")
    calibrated = ([a for a, k in knows.items() if "known-members" in k] if declared
                  else [a for a, e in attacks.items() if e.get("calibration")])
    if calibrated:
        items.append(f"ORACLE: knows the membership of other audited records "
                     f"({', '.join(calibrated)}: cross-fitted on records of known "
                     "membership). No real attacker has this; these attacks are left out of "
                     "the verdict.")
    if "reference" in attacks and lm:
        items.append("Has a second language model (reference) to calibrate each text's "
                     "difficulty.")
    if "shokri" in attacks:
        items.append("Trains an attack classifier on its reference models' outputs (shokri).")
    prior = summary.get("settings", {}).get("prior", 0.5)
    items.append(f"Membership prior {prior:g}: the PPV assumes this share of members among "
                 "the records the attacker tests.")
    return items


def _uses_references(name: str) -> bool:
    from miaudit.attacks import ATTACKS

    if name in ATTACKS:
        return ATTACKS[name].min_references > 0
    return name.startswith("lira-")


def records_at_risk(scores: pd.DataFrame, attack: str, *, top: int = TOP_RECORDS
                    ) -> tuple[pd.DataFrame, int, int]:
    """The members the attack exposes most (risk = share of non-members scored lower,
    per target; see :func:`~miaudit.audits.exposures.record_risk`).

    Returns
    -------
    records : pandas.DataFrame
        Up to ``top`` member rows (``record_id``, ``target``, ``fingerprint``, ``risk``,
        ``score``, ``p_member`` when the run scored the privacy risk (Song & Mittal's
        posterior probability of membership, :mod:`miaudit.attacks.privacy_risk`), and any
        raw-content column), highest risk first (ties: higher score).
    exposed : int
        Members caught at :data:`EXPOSED_FPR` (risk >= 1 - EXPOSED_FPR).
    members : int
        Member rows (over all targets).
    """
    import numpy as np
    import pandas as pd

    from miaudit.audits.exposures import record_risk

    parts = []
    keep = ["record_id", "target", "fingerprint", *[c for c in RAW_COLUMNS
                                                    if c in scores.columns]]
    table = scores if "target" in scores.columns else scores.assign(target=0)
    for _, rows in table.groupby("target", sort=True):
        rows = rows[rows[attack].notna()]
        member = rows["is_member"].to_numpy(bool)
        risk = record_risk(rows[attack].to_numpy(np.float64), member)
        parts.append(rows.assign(risk=risk, score=rows[attack])[member])
    members = pd.concat(parts, ignore_index=True)
    exposed = int((members["risk"] >= 1 - EXPOSED_FPR - 1e-12).sum())
    ordered = members.sort_values(["risk", "score"], ascending=False, kind="stable")
    shown = [*keep, "risk", "score"]
    if POSTERIOR_ATTACK in ordered.columns:
        ordered = ordered.assign(p_member=ordered[POSTERIOR_ATTACK])
        shown.append("p_member")
    return ordered.head(top)[shown].reset_index(drop=True), exposed, len(members)


def _method(summary: dict, signals_info: str | None) -> list[str]:
    """The method section: how members were drawn, the references, the statistics."""
    return (_members_method(summary) + _references_method(summary)
            + _statistics_method(summary, signals_info))


def _members_method(summary: dict) -> list[str]:
    """How the members and non-members were drawn."""
    d, t = summary.get("data", {}), summary.get("target", {})
    lm = summary.get("task") == "language model"
    n_mem, n_out = t.get("n_members", "?"), t.get("n_non_members", "?")
    items = []
    if lm:
        if t.get("recipe"):
            items.append(f"The target ({t.get('description', t.get('model'))}) was trained on "
                         f"a seeded random half (seed {t.get('seed')}) of the "
                         f"{d.get('n_records_in_game', d.get('n_records', '?'))} texts of the "
                         f"game; the other half are non-members ({n_mem} members vs {n_out} "
                         "non-members). Empty and duplicate texts were dropped first.")
            if d.get("n_tokenizer_records"):
                items.append(f"The tokenizer was trained on {d['n_tokenizer_records']} "
                             "other texts, set aside before the game, so token counts "
                             "carry no membership.")
        else:
            items.append(f"The members are the texts the user marked as training texts of "
                         f"the model ({n_mem} members vs {n_out} non-members).")
    elif t.get("model") == "precomputed outputs":
        items.append(f"Outputs, labels and membership were read from {d.get('source', '?')} "
                     f"({n_mem} members vs {n_out} non-members); nothing was trained or "
                     "queried, so how the members were drawn is up to the file's author.")
    elif t.get("recipe"):
        n_game = d.get("n_records_in_game", d.get("n_records", "?"))
        items.append(f"The target was trained on a seeded random half (seed {t.get('seed')}) "
                     f"of the {n_game} records in the game; the other half are its "
                     f"non-members ({n_mem} members vs {n_out} non-members).")
        dup = d.get("n_duplicates_left_out")
        if dup:
            items.append(f"{dup} duplicate record(s) were left out so that no record is both "
                         "member and non-member.")
    else:
        items.append(f"The members were named by the user (the records the model was "
                     f"trained on); every other record is a non-member ({n_mem} members vs "
                     f"{n_out} non-members).")
    return items


def _references_method(summary: dict) -> list[str]:
    """The reference models and the targets."""
    d, t, s = summary.get("data", {}), summary.get("target", {}), summary.get("settings", {})
    lm = summary.get("task") == "language model"
    items = []
    refs = t.get("references")
    if refs and not lm:
        if t.get("reference_mode", "online") == "offline":
            items.append(f"Offline references: {d.get('n_population_records', 'half of the')} "
                         f"population records were set aside; {refs} reference models "
                         "trained on random halves of them and never saw an audited record.")
        else:
            items.append(f"Online references: {refs + 2} models trained on random halves in "
                         "complementary pairs; each target's references are all models but "
                         f"itself and its complement ({refs}), so every record is IN for "
                         "exactly half of them.")
    elif refs:
        items.append(f"{refs} reference language models, each fine-tuned on a random half.")
    targets = t.get("targets") or s.get("targets") or 1
    if targets > 1:
        items.append(f"{targets} models took the target's role in turn; the figures pool the "
                     f"{targets} targets' records.")
    return items


def _statistics_method(summary: dict, signals_info: str | None) -> list[str]:
    """The intervals, the choice of the strongest attack and the verdict rule."""
    s = summary.get("settings", {})
    items = []
    conf = round(100 * (1 - s.get("alpha", 0.05)))
    items.append(f"Intervals ({conf}%): DeLong for the AUC; Clopper-Pearson on the members "
                 "for each TPR (at the threshold chosen on the same data; the uncertainty of "
                 "the FPR itself is not included). The epsilon lower bound uses one-sided "
                 f"Clopper-Pearson bounds with delta {s.get('delta', 1e-5):g}, the threshold "
                 "chosen on one half of the records and the bound computed on the other.")
    n_att = len(summary.get("attacks") or {})
    items.append(f"The strongest attack is picked after the fact among {n_att} attack(s): the "
                 "highest TPR at the lowest measurable FPR, ties to the higher AUC; the best "
                 "of many attacks is slightly optimistic.")
    v = summary.get("verdict")
    if isinstance(v, dict) and v.get("correction"):
        items.append("Verdict: 'no measurable leakage' unless some attack within the threat "
                     "model (oracle attacks excluded) has its AUC interval above 0.5 or its TPR "
                     "interval above the FPR, with intervals corrected for choosing the "
                     f"strongest ({v['correction']}); then 'high' from 10 times a random guess "
                     "(or AUC >= 0.8), 'moderate' from 2 times (or AUC >= 0.6), else 'low'.")
    else:
        items.append("Verdict: 'no measurable leakage' unless the strongest attack's TPR "
                     "interval lies above the upper bound of the FPR (itself measured on the "
                     "non-members) or its AUC interval above 0.5; then 'high' from 10 times "
                     "a random guess (or AUC >= 0.8), 'moderate' from 2 times (or AUC >= "
                     "0.6), else 'low'. (This run records no corrected verdict.)")
    methods = next((e.get("interval_method") for e in (summary.get("attacks") or {}).values()
                    if e.get("interval_method")), None)
    if methods:
        items.append(f"Intervals: AUC by {methods.get('auc')}; TPR at FPR by "
                     f"{methods.get('tpr_at_fpr')}, so that they cover the true TPR at the "
                     "true FPR (the threshold's own uncertainty included).")
    from miaudit.report.terminal import tpr_notes

    for (f, note), names in tpr_notes(summary).items():
        items.append(f"TPR at {fpr_text(f)} FPR ({', '.join(names)}): {note}.")
    if signals_info:
        items.append(signals_info)
    return items


_FIGURE_NAMES = {"tpr_at_fpr": "TPR", "tpr_at_fpr_ci": "TPR interval", "ppv_at_fpr": "PPV",
                 "epsilon_lower_bound": "epsilon lower bound", "auc": "AUC",
                 "auc_ci": "AUC interval"}


def _undefined(summary: dict) -> list[tuple[str, list[str]]]:
    """Each distinct reason a figure is not measurable, with the figures ("TPR, TPR
    interval, PPV at 0.1% FPR") and the attacks concerned ("every attack" when all)."""
    attacks = summary.get("attacks") or {}
    figures: dict[str, dict[str, list[str]]] = {}  # reason -> level -> figure names
    names: dict[str, list[str]] = {}
    for name, e in attacks.items():
        for key, reason in (e.get("undefined") or {}).items():
            base, _, level = key.partition(".")
            fig = _FIGURE_NAMES.get(base, base.replace("_", " "))
            levels = figures.setdefault(reason, {})
            if fig not in levels.setdefault(level, []):
                levels[level].append(fig)
            if name not in names.setdefault(reason, []):
                names[reason].append(name)
    out = []
    for reason in sorted(figures):
        figs = "; ".join(", ".join(f) + (f" at {fpr_text(level)} FPR" if level else "")
                         for level, f in figures[reason].items())
        who = ("every attack" if len(names[reason]) == len(attacks) > 1
               else ", ".join(names[reason]))
        out.append((reason, [figs, who]))
    return out


def _sweep(summary: dict, fprs: list[str]) -> dict | None:
    """The ``sweep`` section normalised: parameter, FPR key and rows with a ``tpr``."""
    raw = summary.get("sweep")
    if not raw:
        return None
    rows = raw.get("rows", []) if isinstance(raw, dict) else list(raw)
    if not rows:
        return None
    parameter = str(raw.get("parameter", "setting")) if isinstance(raw, dict) else "setting"
    dicts = [r["tpr_at_fpr"] for r in rows if isinstance(r.get("tpr_at_fpr"), dict)]
    key = None
    if dicts:
        keys = sorted({k for dct in dicts for k in dct}, key=float)
        preferred = [k for k in keys if float(k) == 0.001]
        measurable = [k for k in keys if any(dct.get(k) is not None for dct in dicts)]
        key = next((k for k in preferred if k in measurable), None) or (
            measurable[0] if measurable else keys[0])
    elif isinstance(raw, dict) and raw.get("fpr") is not None:
        key = str(raw["fpr"])
    out = []
    for r in rows:
        tpr = r.get("tpr_at_fpr")
        out.append({**r, "tpr": tpr.get(key) if isinstance(tpr, dict) else tpr})
    label = f"TPR at {fpr_text(key)} FPR" if key else "TPR at low FPR"
    note = raw.get("search_note") if isinstance(raw, dict) else None
    return {"parameter": parameter, "fpr": key, "tpr_label": label, "rows": out,
            "note": note}


def first_exposure_scores(summary: dict, scores: pd.DataFrame) -> pd.DataFrame:
    """The score rows of the summary's first exposure (all rows when there is one)."""
    if "exposure" in scores.columns and summary.get("exposure") is not None:
        mine = scores[scores["exposure"].astype(str) == str(summary["exposure"])]
        if len(mine):
            return mine.reset_index(drop=True)
    return scores


def build_content(summary: dict, scores: pd.DataFrame, *, show_records: bool = False,
                  signals_info: str | None = None, source: str | None = None
                  ) -> ReportContent:
    """Compute what the report says from a summary and its score table.

    Parameters
    ----------
    summary : dict
        The content of ``summary.json``.
    scores : pandas.DataFrame
        The content of ``scores.parquet``.
    show_records : bool, default False
        Show the raw content of the records at risk where the score table stores it.
    signals_info : str, optional
        One line on ``signals.npz`` for the method section.
    source : str, optional
        Where the run came from (the run folder's name), for the footer.
    """
    if not isinstance(summary, Mapping) or "attacks" not in summary:
        raise DataError("The summary has no 'attacks' section: not a miaudit summary.json.")
    lm = summary.get("task") == "language model"
    fprs = _fprs(summary)
    v = verdict(summary)
    first = first_exposure_scores(summary, scores)
    records, exposed, members, note = None, 0, 0, ""
    raw = [c for c in RAW_COLUMNS if c in first.columns]
    if v.attack is not None and v.attack in first.columns and "is_member" in first.columns:
        records, exposed, members = records_at_risk(first, v.attack)
        pooled = "target" in first.columns and first["target"].nunique() > 1
        note = (f"{exposed} of {members} member{'s' if members != 1 else ''}"
                f"{' (over all targets)' if pooled else ''}"
                f" are flagged by {v.attack} at {fpr_text(EXPOSED_FPR)} FPR "
                f"(risk >= {1 - EXPOSED_FPR:g}). Risk = share of non-members the attack "
                "scores lower; 1 - risk is the FPR of the threshold that just flags the "
                "record.")
    alpha = summary.get("settings", {}).get("alpha", 0.05)
    return ReportContent(
        summary=dict(summary), scores=first, is_lm=lm,
        exposure=str(summary.get("exposure", "?")), fprs=fprs,
        confidence=round(100 * (1 - alpha)), verdict=v,
        key_figures=_key_figures(summary, v, fprs), identity=_identity(summary),
        threat=_threat(summary), records=records, records_note=note, raw_columns=raw,
        show_records=show_records, method=_method(summary, signals_info),
        undefined=_undefined(summary), warnings=[str(w) for w in summary.get("warnings", [])],
        sweep=_sweep(summary, fprs), signals_info=signals_info, source=source,
    )


def raw_values_note(c: ReportContent) -> str:
    """What the records table says about raw values (never shown unless asked for and
    stored)."""
    what = "texts" if c.is_lm else "feature values"
    if not c.raw_columns:
        return (f"Raw values not stored: the run folder holds no raw {what}, only record IDs "
                "and fingerprints (SHA-256 of each record's canonical content).")
    if c.show_records:
        return f"Raw {what} are shown because the report was asked for them (show_records)."
    return (f"Raw {what} hidden; ask for them with --show-records (show_records=True).")
