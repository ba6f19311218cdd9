"""A "Privacy: membership inference" section for a model card, from a run's summary.

Figures are rounded the same way everywhere in the section: AUC and its interval to 3
decimals (``0.543 [0.517, 0.570]``), true-positive rates as percentages with 2 decimals
(``0.78% [0.31%, 1.60%]``), the epsilon lower bound to 2 decimals, record risks to 4.
Values that come from the data or the user (data set name, record IDs, model names,
warnings) are escaped so that they render as text, never as Markdown or HTML. Records
are named by ID only: neither feature values nor fingerprints appear (a hash of a record
with few fields can be inverted by trying every candidate).
"""

from __future__ import annotations

import pandas as pd

from miaudit.audits.exposures import EXPOSED_FPR, strongest_attack
from miaudit.governance.records import member_risks
from miaudit.report.markdown import md_escape as escape_markdown

__all__ = ["escape_markdown", "model_card_section"]

#: FPR levels always shown in the attack table (others only when some attack measured them).
_SHOWN_LEVELS = (0.01, 0.001)
#: The figures of the attack table, as named in the list of unmeasurable ones.
_LABELS = {"tpr_at_fpr": "TPR at {} FPR", "epsilon_lower_bound": "epsilon lower bound"}


def _auc(v: float | None, ci: list | None = None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" + ("" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]")


def _rate(v: float | None, ci: list | None = None) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.2f}%" + ("" if ci is None else
                                f" [{100 * ci[0]:.2f}%, {100 * ci[1]:.2f}%]")


def _eps(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _level(key: str) -> str:
    return f"{100 * float(key):g}%"


def _levels(entries: dict) -> list[str]:
    keys = sorted({k for e in entries.values() for k in e.get("tpr_at_fpr", {})},
                  key=float, reverse=True)
    return [k for k in keys
            if any(abs(float(k) - s) < 1e-12 for s in _SHOWN_LEVELS)
            or any(e["tpr_at_fpr"].get(k) is not None for e in entries.values())]


def _provenance(d: dict, lm: bool) -> list[str]:
    what = "texts" if lm else "records"
    lines = ["### Data", "", f"- Data set: {escape_markdown(d.get('name', 'unknown'))}"]
    if d.get("fingerprint"):
        lines.append(f"- Fingerprint (SHA-256 over record IDs and record fingerprints): "
                     f"{escape_markdown(d['fingerprint'])}")
    count = f"- {what.capitalize()}: {d.get('n_records', 'unknown')}"
    if d.get("n_records_in_game") not in (None, d.get("n_records")):
        count += f" ({d['n_records_in_game']} in the membership game)"
    lines.append(count)
    if d.get("n_duplicates_left_out"):
        lines.append(f"- Duplicates left out of the game: {d['n_duplicates_left_out']} "
                     "(same content as an earlier record)")
    if d.get("source"):
        lines.append(f"- Source: {escape_markdown(d['source'])}")
    return [*lines, ""]


def _target(t: dict, lm: bool) -> list[str]:
    lines = ["### Target model", "",
             f"- Model: {escape_markdown(t.get('description') or t.get('model', 'unknown'))}"]
    if t.get("seed") is not None:
        lines.append(f"- Training seed: {t['seed']}")
    if "train_accuracy" in t:
        lines.append(f"- Accuracy: {t['train_accuracy']:.3f} on members (training records), "
                     f"{t['test_accuracy']:.3f} on non-members")
    elif "member_mean_nll" in t:
        lines.append(f"- Mean negative log-likelihood per token: {t['member_mean_nll']:.3f} on "
                     f"members, {t['non_member_mean_nll']:.3f} on non-members")
    return [*lines, ""]


def _game(summary: dict, lm: bool) -> list[str]:
    t, d = summary["target"], summary["data"]
    what = "texts" if lm else "records"
    n_in, n_out = t.get("n_members"), t.get("n_non_members")
    member_column = (d.get("columns") or {}).get("member_column") or d.get("member_column")
    if t.get("model") == "precomputed outputs":
        drawn = "Members and non-members as marked in the outputs file (`is_member`)."
    elif member_column is not None:
        drawn = (f"Members are the {what} the column {escape_markdown(member_column)} marks as "
                 f"training {what}; the other {what} are non-members.")
    elif t.get("recipe") is not None:
        drawn = (f"The model was trained on a seeded random half of the {what} (seed "
                 f"{t.get('seed')}); the other half are the non-members, drawn from the same "
                 f"data, so the game measures memorisation, not a shift between data sets.")
    else:
        drawn = (f"The model owner named the {what} it was trained on (members); every other "
                 f"{what[:-1]} of the data set is a non-member.")
    exposure = escape_markdown(summary.get("exposure", "unknown"))
    lines = ["### Membership game", "",
             f"- What the attacker sees: {exposure}",
             f"- {drawn}",
             f"- Audited: {n_in} members and {n_out} non-members"]
    refs = t.get("references") or summary.get("settings", {}).get("references")
    if refs:
        mode = t.get("reference_mode", "online")
        how = ("each trained on a random half of the audited records" if mode == "online"
               else "trained only on separate population records")
        lines.append(f"- Reference models: {refs} ({mode}: {how})")
        if "reference_test_accuracy" in t:
            lines.append(f"- Reference accuracy: {t['reference_train_accuracy']:.3f} on their "
                         f"members, {t['reference_test_accuracy']:.3f} on their non-members")
    else:
        lines.append("- Reference models: none (reference-free attacks only)")
    targets = t.get("targets") or summary.get("settings", {}).get("targets", 1)
    if targets and targets > 1:
        lines.append(f"- Targets: figures pooled over {targets} models trained the same way")
    return [*lines, ""]


def _attacks(summary: dict, conf: int) -> list[str]:
    entries = summary["attacks"]
    levels = _levels(entries)
    head = ["attack", f"AUC [{conf}% CI]",
            *(f"TPR at {_level(k)} FPR [{conf}% CI]" for k in levels), "epsilon lower bound"]
    lines = ["### Attacks", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for name, e in entries.items():
        cells = [escape_markdown(name), _auc(e["auc"], e.get("auc_ci"))]
        cells += [_rate(e["tpr_at_fpr"].get(k), e["tpr_at_fpr_ci"].get(k)) for k in levels]
        cells.append(_eps(e.get("epsilon_lower_bound")))
        lines.append("| " + " | ".join(cells) + " |")
    delta = summary.get("settings", {}).get("delta", 1e-5)
    lines += ["", "Every attack scores each record (higher = more likely a member). AUC 0.5 is "
              "chance. TPR at x% FPR is the share of members an attacker identifies while "
              "wrongly flagging at most x% of non-members (what matters for privacy is the low "
              f"FPR end). The epsilon lower bound holds with {conf}% confidence: training that "
              f"is (epsilon, delta = {delta:g})-differentially private could not let the "
              "attack succeed as it does unless epsilon is at least this large.", ""]
    return lines


def _unmeasurable(entries: dict) -> list[str]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for name, e in entries.items():
        for key, reason in e.get("undefined", {}).items():
            figure, _, level = key.partition(".")
            if figure not in _LABELS:
                continue
            label = _LABELS[figure].format(_level(level) if level else "")
            grouped.setdefault((label, reason), []).append(name)
    if not grouped:
        return []
    lines = ["### Figures that could not be measured", ""]
    for (label, reason), names in grouped.items():
        who = ("all attacks" if len(names) == len(entries) and len(entries) > 1
               else ", ".join(escape_markdown(n) for n in names))
        lines.append(f"- {label} ({who}): {escape_markdown(reason)}")
    return [*lines, ""]


def _records(summary: dict, scores: pd.DataFrame | None, top: int) -> list[str]:
    lines = ["### Most exposed member records", ""]
    rows: list[dict]
    if scores is not None:
        best, members = member_risks(summary, scores)
        exposed = int((members["risk"] >= 1 - EXPOSED_FPR).sum())
        rows = [{"record_id": r["record_id"], "target": r.get("target", 0), "risk": r["risk"]}
                for r in members.head(top).to_dict("records")]
        count = (f"{exposed} of {len(members)} members have a risk of at least "
                 f"{1 - EXPOSED_FPR:g} (caught at {100 * EXPOSED_FPR:g}% FPR).")
    else:
        section = summary.get("exposures", {}).get("records_at_risk", {})
        rows = list(section.get(summary.get("exposure"), []))[:top]
        if not rows:
            return [*lines, "Not listed: the record-level view needs the run's scores.parquet.",
                    ""]
        best = next(r["strongest_attack"] for r in summary["exposures"]["table"]
                    if r["exposure"] == summary["exposure"])
        count = ""
    lines.append(f"Risk of a member under the strongest attack ({escape_markdown(best)}): the "
                 "share of non-members it scores lower, so a member with risk 0.999 is "
                 "identified at a 0.1% false-positive rate. Records are named by ID only."
                 + (f" {count}" if count else ""))
    if not rows:
        return [*lines, ""]
    several = len({r.get("target", 0) for r in rows}) > 1
    head = ["rank", "record ID", *(["target model"] if several else []), "risk"]
    lines += ["", "| " + " | ".join(head) + " |",
              "|" + "|".join(["---:", "---"] + (["---:"] if several else []) + ["---:"]) + "|"]
    for rank, r in enumerate(rows, 1):
        cells = [str(rank), escape_markdown(r["record_id"]),
                 *([str(int(r.get("target", 0)))] if several else []), f"{r['risk']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _exposures(summary: dict, conf: int) -> list[str]:
    section = summary.get("exposures")
    if not section:
        return []
    lines = ["### Exposures compared", "",
             f"| exposure | strongest attack | AUC [{conf}% CI] | TPR at 1% FPR | "
             "accuracy on non-members |", "|---|---|---:|---:|---:|"]
    for row in section["table"]:
        acc = row.get("test_accuracy")
        lines.append(f"| {escape_markdown(row['exposure'])} | "
                     f"{escape_markdown(row['strongest_attack'])} | "
                     f"{_auc(row['auc'], row.get('auc_ci'))} | "
                     f"{_rate(row['tpr_at_fpr'].get('0.01'))} | "
                     f"{'n/a' if acc is None else f'{acc:.3f}'} |")
    return [*lines, ""]


def _language_model(summary: dict) -> list[str]:
    lines: list[str] = []
    blind = summary.get("blind_baseline")
    if blind:
        lines += ["### Blind baseline", "",
                  f"A classifier that sees only the texts, never the model, tells members from "
                  f"non-members with AUC {_auc(blind['auc'], blind.get('auc_ci'))}, against "
                  f"{blind['best_attack_auc']:.3f} for the best attack. When the two are close, "
                  "the members and non-members differ in distribution and the attacks measure "
                  "that shift rather than memorisation.", ""]
        if blind.get("warning"):
            lines += [f"**Warning:** {escape_markdown(blind['warning'])}", ""]
    canaries = summary.get("canaries") or []
    if canaries:
        lines += ["### Canaries", "",
                  "Secret canaries were inserted into the training texts; the exposure (in "
                  "bits) says how much more likely the model finds each one than other "
                  "secrets of the same form (Carlini et al. 2019).", "",
                  "| copies in training | exposure (bits) | largest possible |",
                  "|---:|---:|---:|"]
        for c in canaries:
            lines.append(f"| {c['repetitions']} | {c['exposure']:.1f} | "
                         f"{c['max_exposure']:.1f} |")
        lines.append("")
    return lines


def model_card_section(summary: dict, scores: pd.DataFrame | None = None, *,
                       top_records: int = 10) -> str:
    """The Markdown section "## Privacy: membership inference" of a model card.

    Parameters
    ----------
    summary : dict
        A run's ``summary.json`` (classification or language-model audit).
    scores : pandas.DataFrame, optional
        The run's ``scores.parquet``, for the most exposed member records (without it, the
        records listed by an exposure comparison, if any).
    top_records : int, default 10
        Member records listed.

    Returns
    -------
    str
        Markdown: data provenance, target, membership game, a table of attacks (AUC, TPR
        at 1% and 0.1% FPR with intervals, epsilon lower bound), the figures that could not
        be measured and why, the most exposed records by ID, and for language models the
        blind baseline and the canaries.

    Examples
    --------
    >>> entry = {"auc": 0.61, "auc_ci": [0.57, 0.65], "tpr_at_fpr": {"0.01": 0.02},
    ...          "tpr_at_fpr_ci": {"0.01": [0.01, 0.04]}, "epsilon_lower_bound": None,
    ...          "undefined": {"epsilon_lower_bound": "not measurable: too few records"}}
    >>> md = model_card_section({"data": {"name": "digits"}, "target": {"model": "mlp"},
    ...                          "exposure": "logits", "attacks": {"loss": entry}})
    >>> "| loss | 0.610 [0.570, 0.650] | 2.00% [1.00%, 4.00%] | n/a |" in md
    True
    """
    lm = summary.get("task") == "language model"
    settings = summary.get("settings", {})
    conf = round(100 * (1 - settings.get("alpha", 0.05)))
    entries = summary["attacks"]
    lines = ["## Privacy: membership inference", ""]
    what = "text" if lm else "record"
    version = summary.get("miaudit_version")
    tool = f"miaudit {escape_markdown(version)}" if version else "miaudit"
    intro = (f"Can an outsider tell, from the model's outputs, whether a given {what} was in "
             f"its training data? This section reports a membership-inference audit ({tool});"
             f" intervals are {conf}% confidence intervals.")
    lines += [intro, ""]
    if entries:
        best = strongest_attack(entries, _levels(entries))
        e = entries[best]
        headline = (f"**In short:** the strongest attack ({escape_markdown(best)}) reaches AUC "
                    f"{_auc(e['auc'], e.get('auc_ci'))}")
        if e["tpr_at_fpr"].get("0.01") is not None:
            headline += (f" and identifies {_rate(e['tpr_at_fpr']['0.01'])} of members at a 1% "
                         "false-positive rate")
        if e.get("epsilon_lower_bound") is not None:
            headline += f"; empirical epsilon lower bound {_eps(e['epsilon_lower_bound'])}"
        lines += [headline + ".", ""]
    lines += _provenance(summary.get("data", {}), lm)
    lines += _target(summary.get("target", {}), lm)
    lines += _game(summary, lm)
    if entries:
        lines += _attacks(summary, conf)
        lines += _unmeasurable(entries)
        lines += _exposures(summary, conf)
        lines += _records(summary, scores, top_records)
    if lm:
        lines += _language_model(summary)
    warnings = summary.get("warnings") or []
    if warnings:
        lines += ["### Warnings", "", *(f"- {escape_markdown(w)}" for w in warnings), ""]
    return "\n".join(lines).rstrip() + "\n"
