"""A concise terminal summary of an audit (Rich)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def figure(value: float | None, ci=None, *, pct: bool = False,
           decimals: int | None = None) -> str:
    """A figure and its interval as the tables print it: ``0.912 [0.901, 0.923]``, or with
    ``pct`` ``12.3% [10.1, 14.6]``; ``n/a`` when it is not measurable. Decimals: 3, or 1
    for percentages."""
    if value is None:
        return "n/a"
    d = decimals if decimals is not None else (1 if pct else 3)
    scale, unit = (100.0, "%") if pct else (1.0, "")
    text = f"{scale * value:.{d}f}{unit}"
    if ci and None not in tuple(ci):
        text += f" [{scale * ci[0]:.{d}f}, {scale * ci[1]:.{d}f}]"
    return text


def summary_table(summary: dict) -> Table:
    """One row per attack: AUC and TPR at each FPR level with intervals, balanced accuracy,
    advantage and the epsilon lower bound."""
    fprs = [str(f) for f in summary["settings"]["fprs"]]
    conf = round(100 * (1 - summary["settings"]["alpha"]))
    table = Table(title=f"Membership inference, exposure '{escape(summary['exposure'])}' "
                        f"({conf}% intervals)", title_justify="left")
    table.add_column("attack", style="bold")
    table.add_column("AUC", justify="right")
    for f in fprs:
        table.add_column(f"TPR@{100 * float(f):g}%FPR", justify="right")
    table.add_column("bal. acc.", justify="right")
    table.add_column("advantage", justify="right")
    table.add_column("eps LB", justify="right")
    table.add_column("knows", style="dim")
    for name, m in summary["attacks"].items():
        cells = [name, figure(m["auc"], m["auc_ci"])]
        for f in fprs:
            cells.append(figure(m["tpr_at_fpr"][f], m["tpr_at_fpr_ci"][f], pct=True))
        eps = m["epsilon_lower_bound"]
        cells += [f"{m['balanced_accuracy']:.3f}", f"{m['advantage']:.3f}",
                  "n/a" if eps is None else f"{eps:.2f}", knowledge_text(m.get("knowledge"))]
        table.add_row(*cells)
    return table


def knowledge_text(knowledge: list[str] | None) -> str:
    """What an attack knows besides the target's release, in a table cell; known-members
    (oracle) attacks are marked."""
    if knowledge is None:
        return "?"
    if not knowledge:
        return "outputs only"
    return ", ".join("ORACLE: known members" if k == "known-members" else k
                     for k in knowledge)


def tpr_notes(summary: dict) -> dict[tuple[str, str], list[str]]:
    """The caveats of the TPR figures (an upward bias where few false positives are
    allowed, a lower end pinned at 0), each with the attacks it concerns."""
    notes: dict[tuple[str, str], list[str]] = {}
    for name, m in summary.get("attacks", {}).items():
        for f, note in (m.get("tpr_at_fpr_note") or {}).items():
            notes.setdefault((f, note), []).append(name)
    return notes


def extraction_lines(entry: dict) -> list[str]:
    """The extraction test's summary entry (``summary["extraction"]``,
    :meth:`miaudit.audits.extraction.ExtractionResult.to_dict`) as plain text lines: the
    setting, each group's exact and near-exact extractable fractions with intervals, the
    texts skipped, and the verdict."""
    s, groups = entry["settings"], entry["groups"]
    conf = round(100 * (1 - s["alpha"]))
    lines = [f"extraction: greedy continuation of each text's first {s['prefix_tokens']} "
             f"tokens compared with its next {s['suffix_tokens']} ({conf}% intervals)"]
    for key, label in (("members", "members"), ("non_members", "non-members")):
        g = groups[key]
        run = g["mean_match_tokens"]
        lines.append(
            f"  {label}: exact {g['exact']}/{g['n_evaluated']} "
            f"{figure(g['exact_fraction'], g['exact_ci'], pct=True)}, near-exact "
            f"{g['near_exact']}/{g['n_evaluated']} "
            f"{figure(g['near_exact_fraction'], g['near_exact_ci'], pct=True)}, mean "
            f"matching run {'n/a' if run is None else f'{run:.1f}'} tokens")
    skipped = []
    if entry["n_too_short"]:
        skipped.append(f"{entry['n_too_short']} of {entry['n_texts']} texts shorter than "
                       f"{s['prefix_tokens'] + s['suffix_tokens']} tokens")
    if entry["n_not_sampled"]:
        skipped.append(f"{entry['n_not_sampled']} beyond max_texts={s['max_texts']}")
    if skipped:
        lines.append("  not tested: " + "; ".join(skipped))
    v = entry["verdict"]
    lines.append(f"  verdict: {v['level']}. {v['sentence']}")
    return lines


def print_summary(summary: dict, console: Console | None = None, run_dir: str | None = None
                  ) -> None:
    """Print the headline facts, the attack table and the not-measurable figures."""
    console = console or Console()
    d, t = summary["data"], summary["target"]
    what = "texts" if summary.get("task") == "language model" else "records"
    console.print(
        f"[bold]data[/] {escape(str(d['name']))}: {d['n_records']} {what}"
        + (f", {d['n_classes']} classes" if d.get("n_classes") else "")
        + (f", fingerprint {d['fingerprint'][:12]}" if d.get("fingerprint") else "")
    )
    if "train_accuracy" in t:
        quality = (f"train accuracy {t['train_accuracy']:.3f}, test accuracy "
                   f"{t['test_accuracy']:.3f}")
    elif "member_mean_nll" in t:  # a language model
        quality = (f"mean NLL per token {t['member_mean_nll']:.3f} on members, "
                   f"{t['non_member_mean_nll']:.3f} on non-members")
    else:  # a language model whose log-probabilities were not read (SaMIA alone)
        quality = "no log-probabilities read"
    console.print(
        f"[bold]target[/] {escape(str(t.get('description', t['model'])))}: {quality}; "
        f"{t['n_members']} members vs {t['n_non_members']} non-members"
    )
    if t.get("references"):
        targets = t.get("targets", 1)
        console.print(
            f"[bold]references[/] {t['references']} ({t.get('reference_mode', 'online')}), "
            f"train accuracy {t['reference_train_accuracy']:.3f}, test accuracy "
            f"{t['reference_test_accuracy']:.3f}"
            + (f"; metrics pooled over {targets} targets" if targets > 1 else "")
        )
    training = t.get("training")
    if training and training.get("cached"):
        console.print(f"[bold]models[/] {training['trained']} trained, {training['cached']} "
                      "loaded from the cache")
    if training and training.get("resumed"):
        r = training["resumed"]
        console.print(f"[bold]resumed[/] {r['models']} model(s) from their training "
                      f"checkpoint at epoch {r['from_epoch']} (a previous run was "
                      "interrupted)", highlight=False)
    console.print(summary_table(summary))
    blind = summary.get("blind_baseline")
    if blind:
        lo, hi = blind["auc_ci"]
        console.print(f"[bold]blind baseline[/] (texts only, no model): AUC {blind['auc']:.3f} "
                      f"[{lo:.3f}, {hi:.3f}] vs best attack {blind['best_attack_auc']:.3f}")
        if blind.get("warning"):
            console.print(f"[bold red]WARNING[/] {escape(blind['warning'])}")
    for c in summary.get("canaries") or []:
        copies = "1 copy" if c["repetitions"] == 1 else f"{c['repetitions']} copies"
        console.print(f"[bold]canary[/] {copies}: exposure {c['exposure']:.1f} of "
                      f"{c['max_exposure']:.1f} bits (sampled estimate "
                      f"{c['exposure_sampled']:.1f})", highlight=False)
    extraction = summary.get("extraction")
    if extraction:
        head, *rest = extraction_lines(extraction)
        console.print(f"[bold]{escape(head)}[/]", highlight=False)
        for line in rest:
            console.print(escape(line), highlight=False)
    shown = ("tpr_at_fpr.", "epsilon_lower_bound")  # the figures the table shows
    reasons = sorted({r for m in summary["attacks"].values()
                      for key, r in m["undefined"].items() if key.startswith(shown)})
    for r in reasons:
        console.print(f"[dim]n/a: {escape(r)}[/]")
    for (f, note), names in tpr_notes(summary).items():
        console.print(f"[dim]note, TPR at {100 * float(f):g}% FPR ({escape(', '.join(names))}): "
                      f"{escape(note)}[/]")
    for w in summary.get("warnings", []):
        console.print(f"[yellow]warning[/] {escape(w)}")
    v = summary.get("verdict")
    if v:  # last but the paths: what a reader takes away
        color = {"none": "green", "low": "yellow", "moderate": "dark_orange",
                 "high": "red"}.get(v["level"], "white")
        if v.get("correction"):
            console.print(f"[dim]{escape(v['correction'])}[/]")
        console.print(f"[bold {color}]verdict: {v['level']}[/] {escape(v['sentence'])}")
        if v.get("note"):
            console.print(f"[dim]{escape(v['note'])}[/]")
    if run_dir:
        console.print(f"[bold]run folder[/] {escape(str(run_dir))}")
        report = Path(run_dir) / "report.html"
        if report.is_file():
            console.print(f"[bold]report[/] {escape(str(report))}")


def exposures_table(summary: dict) -> Table:
    """One row per exposure setting: its strongest attack with AUC and TPR at each FPR
    level (intervals), the accuracy of the labels it releases, and the members exposed."""
    section = summary["exposures"]
    fprs = [str(f) for f in summary["settings"]["fprs"]]
    conf = round(100 * (1 - summary["settings"]["alpha"]))
    table = Table(title=f"Exposures compared: the strongest attack under each ({conf}% "
                        "intervals)", title_justify="left")
    for col in ("exposure", "strongest attack", "AUC"):
        table.add_column(col, justify="right" if col == "AUC" else "left")
    for f in fprs:
        table.add_column(f"TPR@{100 * float(f):g}%FPR", justify="right")
    table.add_column("test acc.", justify="right")
    table.add_column("members exposed", justify="right")
    table.add_column("queries", justify="right")
    for row in section["table"]:
        cells = [escape(row["exposure"]), row["strongest_attack"],
                 figure(row["auc"], row["auc_ci"])]
        for f in fprs:
            cells.append(figure(row["tpr_at_fpr"][f], row["tpr_at_fpr_ci"][f], pct=True))
        acc = row.get("test_accuracy")
        cells += ["n/a" if acc is None else f"{acc:.3f}",
                  f"{row['members_exposed']}/{row['members']}",
                  f"{row['queries_to_target']:,}"]
        table.add_row(*cells)
    return table


def print_exposures(summary: dict, console: Console | None = None,
                    run_dir: str | None = None) -> None:
    """Print the exposure comparison and the records that stay most exposed."""
    console = console or Console()
    section = summary["exposures"]
    console.print(exposures_table(summary))
    console.print(f"[dim]{escape(section['criterion'])}. {escape(section['utility_note'])}[/]")
    console.print(f"[dim]{escape(section['risk_note'])}[/]")
    for name, records in section["records_at_risk"].items():
        shown = escape(", ".join(f"{r['record_id']} ({r['risk']:.4f})" for r in records[:5]))
        console.print(f"[bold]most exposed under {name}[/]: {shown}", highlight=False)
    every = section["exposed_under_every_exposure"]
    console.print(f"[bold]exposed under every exposure[/]: {every['count']} member(s)"
                  + (": " + escape(", ".join(e["record_id"] for e in every["examples"]))
                     if every["examples"] else ""), highlight=False)
    if run_dir:
        console.print(f"[bold]run folder[/] {escape(str(run_dir))} (exposures.json)")
