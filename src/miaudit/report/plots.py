"""Plots of the audit report as inline SVG (matplotlib's object API, no pyplot state).

Every function returns one ``<svg>`` element ready to be placed in an HTML page: no XML
prolog, no metadata, no external reference (``http(s)://``), no font file (text stays text
with a generic font stack), ids prefixed so that several plots can share one page, and the
``class="plot"`` / ``id`` given by the caller. The numbers behind the plots are computed by
the pure functions :func:`roc_points` and :func:`per_class_tpr`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from miaudit.metrics import roc_counts, tpr_at_fpr

#: Line colours, colour-blind friendly (Okabe-Ito, then Tableau for more attacks).
_COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8c564b",
           "#7f7f7f", "#bcbd22", "#17becf", "#9467bd", "#d62728", "#2ca02c", "#1f3a93",
           "#a05195", "#665191")
_MEMBER, _NON_MEMBER = "#D55E00", "#0072B2"

_RC = {
    "svg.fonttype": "none",  # text as <text>: no font file, no glyph outlines
    "svg.hashsalt": "miaudit-report",  # ids that do not change from run to run
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Bitstream Vera Sans", "Verdana"],
    "font.size": 9,
    "text.parse_math": False,  # a '$' in a label is a dollar sign, not mathtext
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}


def color(i: int) -> str:
    """The ``i``-th line colour of the report's plots (cycling)."""
    return _COLORS[i % len(_COLORS)]


@dataclass(frozen=True)
class RocPoints:
    """A ROC curve sampled on a log-spaced FPR grid, with Clopper-Pearson bands on the TPR.

    Attributes
    ----------
    fpr, tpr : float arrays of shape (P,)
        ``tpr[i]`` is the highest TPR of a threshold whose empirical FPR is at most
        ``fpr[i]`` (the conservative reading used for TPR at FPR in ``summary.json``).
    tpr_lo, tpr_hi : float arrays of shape (P,)
        Two-sided ``1 - alpha`` Clopper-Pearson interval of each TPR (over the members).
    n_members, n_non_members : int
    """

    fpr: NDArray[np.float64]
    tpr: NDArray[np.float64]
    tpr_lo: NDArray[np.float64]
    tpr_hi: NDArray[np.float64]
    n_members: int
    n_non_members: int


def _cp_bounds(k: NDArray, n: int, alpha: float) -> tuple[NDArray, NDArray]:
    """Vectorised Clopper-Pearson interval of ``k / n``."""
    from scipy import special

    k = np.asarray(k, dtype=np.float64)
    with np.errstate(all="ignore"):
        lo = np.where(k <= 0, 0.0, special.betaincinv(np.maximum(k, 1e-12), n - k + 1,
                                                      alpha / 2))
        hi = np.where(k >= n, 1.0, special.betaincinv(k + 1, np.maximum(n - k, 1e-12),
                                                      1 - alpha / 2))
    return lo, hi


def roc_points(scores: ArrayLike, is_member: ArrayLike, *, alpha: float = 0.05,
               n_points: int = 200) -> RocPoints:
    """Sample the ROC curve of one attack for a log-log plot.

    Parameters
    ----------
    scores : array of shape (n,)
        Attack scores, higher = more likely a member.
    is_member : bool array of shape (n,)
    alpha : float, default 0.05
        1 - confidence level of the TPR bands.
    n_points : int, default 200
        FPR grid size: ``k / n_non_members`` for about ``n_points`` log-spaced counts ``k``.

    Returns
    -------
    RocPoints

    Example
    -------
    >>> p = roc_points([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    >>> p.fpr.tolist(), p.tpr.tolist()
    ([0.5, 1.0], [1.0, 1.0])
    >>> p.tpr_lo.round(3).tolist()
    [0.158, 0.158]
    """
    _, tp, fp = roc_counts(scores, is_member)
    n_pos, n_neg = int(tp[-1]), int(fp[-1])
    ks = np.unique(np.round(np.geomspace(1, max(n_neg, 1), n_points)).astype(np.int64))
    idx = np.searchsorted(fp, ks, side="right") - 1
    k_tp = tp[idx]
    # a step curve needs only the points where the TPR changes (and the last one)
    keep = np.ones(len(ks), dtype=bool)
    keep[1:-1] = k_tp[1:-1] != k_tp[:-2]
    ks, k_tp = ks[keep], k_tp[keep]
    lo, hi = _cp_bounds(k_tp, n_pos, alpha)
    return RocPoints(ks / max(n_neg, 1), k_tp / max(n_pos, 1), lo, hi, n_pos, n_neg)


def per_class_tpr(scores: ArrayLike, is_member: ArrayLike, labels: ArrayLike, *,
                  fpr: float = 0.01, alpha: float = 0.05) -> tuple[pd.DataFrame, float]:
    """TPR per class at one global threshold: the one of TPR at ``fpr`` in
    ``summary.json`` (highest TPR with empirical FPR <= ``fpr`` over all records).

    Needs at least ``1 / fpr`` non-members (else TPR at ``fpr`` is not measurable).

    Returns
    -------
    table : pandas.DataFrame
        One row per class holding members: ``label``, ``n_members``, ``caught``, ``tpr``,
        ``tpr_lo``, ``tpr_hi`` (Clopper-Pearson), sorted by label.
    overall : float
        The TPR over all classes (equal to ``summary.json``'s TPR at ``fpr``).

    Example
    -------
    >>> t, overall = per_class_tpr(np.arange(200.0), np.arange(200) >= 100,
    ...                            np.arange(200) % 2)
    >>> overall, t["tpr"].tolist()
    (1.0, [1.0, 1.0])
    """
    s = np.asarray(scores, dtype=np.float64)
    m = np.asarray(is_member, dtype=bool)
    y = np.asarray(labels)
    op = tpr_at_fpr(s, m, fpr, alpha)
    flagged = s >= op.threshold
    rows = []
    for label in np.unique(y[m]):
        side = m & (y == label)
        n, k = int(side.sum()), int((flagged & side).sum())
        lo, hi = _cp_bounds(np.array([k]), n, alpha)
        rows.append({"label": label, "n_members": n, "caught": k, "tpr": k / n,
                     "tpr_lo": float(lo[0]), "tpr_hi": float(hi[0])})
    return pd.DataFrame(rows), float(op.value)


# -- SVG output --------------------------------------------------------------------------

_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_STYLE = re.compile(r"<style[^>]*>.*?</style>\s*", re.S)
_ROOT = re.compile(r"<svg\b[^>]*>")
_GROUP_IDS = re.compile(r'<g id="[^"]*">')
_IDS = re.compile(r'\bid="([^"]+)"')
_REFS = re.compile(r'(?:xlink:)?href="#([^"]+)"')
_URLS = re.compile(r"url\(#([^)]+)\)")
_PATH_DATA = re.compile(r'\bd="([^"]*)"')
_DECIMALS = re.compile(r"(-?\d+\.\d{2})\d+")


def _compact_path(match: re.Match) -> str:
    """Path data with 2 decimals (1/100 pt) and single spaces: a third of the size."""
    data = _DECIMALS.sub(r"\1", match.group(1))
    return 'd="' + " ".join(data.split()) + '"'


def _percent_axes(ax, which: str = "xy") -> None:
    """Log axes labelled in percent (0.1%, 1%, 10%, 100%), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fmt = FuncFormatter(lambda v, _pos: f"{100 * v:g}%")
    for axis in ([ax.xaxis] if "x" in which else []) + ([ax.yaxis] if "y" in which else []):
        axis.set_major_locator(LogLocator(base=10))
        axis.set_major_formatter(fmt)
        axis.set_minor_formatter(NullFormatter())
    ax.minorticks_off()


def _figure(width: float, height: float, **kwargs):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", **kwargs)


def to_svg(fig, plot_id: str, label: str) -> str:
    """Render a matplotlib figure as an inline ``<svg class="plot" id=plot_id>`` element.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    plot_id : str
        The element's id (letters, digits and dashes); also prefixes the ids inside it.
    label : str
        Accessible name of the image (``aria-label``), escaped here.
    """
    from html import escape

    import matplotlib

    with matplotlib.rc_context(_RC):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1))
    svg = _STYLE.sub("", svg)  # a global '*' rule; the page's CSS scopes it to the plots
    svg = _PATH_DATA.sub(_compact_path, svg)
    svg = _GROUP_IDS.sub("<g>", svg)  # group ids are never referenced
    svg = _IDS.sub(lambda m: f'id="{plot_id}-{m.group(1)}"', svg)
    svg = _REFS.sub(lambda m: f'href="#{plot_id}-{m.group(1)}"', svg)
    svg = _URLS.sub(lambda m: f"url(#{plot_id}-{m.group(1)})", svg)
    root = _ROOT.search(svg)
    assert root is not None  # matplotlib always writes one
    view = re.search(r'viewBox="([^"]+)"', root.group(0))
    box = view.group(1) if view else "0 0 100 100"
    width = box.split()[2]
    new_root = (f'<svg class="plot" id="{plot_id}" viewBox="{box}" role="img" '
                f'aria-label="{escape(label)}" style="max-width:{width}pt" '
                'preserveAspectRatio="xMidYMid meet">')
    return svg[: root.start()] + new_root + svg[root.end():].rstrip() + "\n"


def _log_floor(points: Sequence[RocPoints]) -> float:
    n = max(max(p.n_members, p.n_non_members) for p in points)
    return 0.5 / max(n, 1)


def roc_svg(curves: Mapping[str, RocPoints], *, strongest: str | None = None,
            plot_id: str = "plot-roc") -> str:
    """All attacks' ROC curves on log-log axes with the random-guess diagonal; the
    strongest attack drawn thicker with its interval band."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(8.6, 5.4)
        ax = fig.add_subplot()
        floor = _log_floor(list(curves.values()))
        ax.plot([floor, 1], [floor, 1], color="#555555", ls="--", lw=1,
                label="random guess")
        for i, (name, p) in enumerate(curves.items()):
            bold = name == strongest
            if bold:
                ax.fill_between(p.fpr, np.maximum(p.tpr_lo, floor), np.maximum(p.tpr_hi, floor),
                                step="post", color=color(i), alpha=0.18, lw=0)
            ax.step(p.fpr, np.maximum(p.tpr, floor), where="post", color=color(i),
                    lw=2.2 if bold else 1.1, label=f"{name} (strongest)" if bold else name,
                    zorder=3 if bold else 2)
        ax.set(xscale="log", yscale="log", xlim=(floor * 1.6, 1), ylim=(floor, 1.05),
               xlabel="false-positive rate", ylabel="true-positive rate")
        _percent_axes(ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        return to_svg(fig, plot_id, "ROC curves of every attack on log-log axes")


def roc_bands_svg(curves: Mapping[str, RocPoints], *, alpha: float,
                  plot_id: str = "plot-roc-bands") -> str:
    """One small log-log ROC panel per attack with its Clopper-Pearson band and the
    random-guess diagonal."""
    import matplotlib

    names = list(curves)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    floor = _log_floor(list(curves.values()))
    with matplotlib.rc_context(_RC):
        from matplotlib.figure import Figure

        width, height = 2.15 * cols + 0.7, 1.85 * rows + 0.6
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=0.85 / width, right=1 - 0.12 / width, bottom=0.5 / height,
                            top=1 - 0.25 / height, wspace=0.18, hspace=0.32)
        axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
        for i, ax in enumerate(axes.flat):
            if i >= len(names):
                ax.set_visible(False)
                continue
            p = curves[names[i]]
            ax.plot([floor, 1], [floor, 1], color="#555555", ls="--", lw=0.8)
            ax.fill_between(p.fpr, np.maximum(p.tpr_lo, floor), np.maximum(p.tpr_hi, floor),
                            step="post", color=color(i), alpha=0.25, lw=0)
            ax.step(p.fpr, np.maximum(p.tpr, floor), where="post", color=color(i), lw=1.2)
            ax.set_title(names[i], fontsize=8.5)
            ax.set(xscale="log", yscale="log", xlim=(floor * 1.6, 1), ylim=(floor, 1.05))
            _percent_axes(ax)
            ax.tick_params(labelsize=7)
        fig.supxlabel("false-positive rate", fontsize=8.5, y=0.02)
        fig.supylabel(f"true-positive rate ({round(100 * (1 - alpha))}% band)",
                      fontsize=8.5, x=0.02)
        return to_svg(fig, plot_id, "ROC curve of each attack with its interval band")


def histograms_svg(panels: Mapping[str, tuple[ArrayLike, ArrayLike]],
                   plot_id: str = "plot-histograms") -> str:
    """Score histograms of members and non-members, one panel per attack (10 to 40 bins
    over the central 99% of the scores; the tails are counted in the outer bins)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(3.9 * len(panels), 2.9)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (name, (scores, is_member)) in zip(axes, panels.items(), strict=True):
            s = np.asarray(scores, dtype=np.float64)
            m = np.asarray(is_member, dtype=bool)
            lo, hi = np.quantile(s, [0.005, 0.995])
            if hi <= lo:
                lo, hi = s.min() - 0.5, s.max() + 0.5
            edges = np.linspace(lo, hi, int(np.clip(np.sqrt(len(s)), 10, 40)) + 1)
            clipped = np.clip(s, lo, hi)
            ax.hist(clipped[~m], bins=edges, density=True, histtype="stepfilled",
                    alpha=0.35, color=_NON_MEMBER, label=f"non-members ({int((~m).sum())})")
            ax.hist(clipped[m], bins=edges, density=True, histtype="step", lw=1.5,
                    color=_MEMBER, label=f"members ({int(m.sum())})")
            ax.set_title(name)
            ax.set(xlabel="score (higher = member)", ylabel="density")
            ax.legend(fontsize=7.5)
        return to_svg(fig, plot_id, "Score histograms of members and non-members")


def per_class_svg(table: pd.DataFrame, *, fpr: float, overall: float, attack: str,
                  plot_id: str = "plot-per-class") -> str:
    """Bars of the TPR per class at one global threshold, with Clopper-Pearson error bars,
    the overall TPR and the random-guess level (TPR = FPR)."""
    import matplotlib
    from matplotlib.ticker import PercentFormatter

    n = len(table)
    with matplotlib.rc_context(_RC):
        fig = _figure(min(max(6.5, 0.3 * n + 2.5), 10.0), 3.0)
        ax = fig.add_subplot()
        x = np.arange(n)
        tpr = table["tpr"].to_numpy()
        err = np.vstack([tpr - table["tpr_lo"].to_numpy(), table["tpr_hi"].to_numpy() - tpr])
        ax.bar(x, tpr, color=color(0), alpha=0.8, width=0.7, label="members of the class")
        ax.errorbar(x, tpr, yerr=err, fmt="none", ecolor="#333333", lw=0.8, capsize=2)
        ax.axhline(overall, color=color(1), lw=1.4, label=f"all members ({100 * overall:.1f}%)")
        ax.axhline(fpr, color="#555555", ls="--", lw=1, label=f"random guess ({100 * fpr:g}%)")
        labels = [str(v) for v in table["label"]]
        step = max(1, n // 30)
        ax.set_xticks(x[::step], labels[::step], fontsize=7.5)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set(xlabel="class", ylabel=f"TPR at {100 * fpr:g}% FPR", xlim=(-0.7, n - 0.3),
               ylim=(0, None))
        ax.set_title(f"{attack}, one global threshold", fontsize=9)
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1))
        return to_svg(fig, plot_id, "TPR at low FPR per class")


def exposures_svg(rows: Sequence[Mapping], *, fpr_key: str,
                  plot_id: str = "plot-exposures") -> str:
    """Per exposure setting: the strongest attack's AUC and TPR at ``fpr_key``, with
    intervals; an exposure whose TPR is not measurable is marked ``n/a``."""
    import matplotlib

    names = [str(r["exposure"]) for r in rows]
    y = np.arange(len(rows))[::-1]
    fpr = float(fpr_key)
    with matplotlib.rc_context(_RC):
        fig = _figure(8.0, 0.38 * len(rows) + 1.3)
        ax_auc, ax_tpr = fig.subplots(1, 2, sharey=True)
        for ax, key, what in ((ax_auc, "auc", "AUC"),
                              (ax_tpr, "tpr", f"TPR at {100 * fpr:g}% FPR")):
            for yi, r in zip(y, rows, strict=True):
                if key == "auc":
                    v, ci = r["auc"], r.get("auc_ci")
                else:
                    v, ci = r["tpr_at_fpr"].get(fpr_key), (r.get("tpr_at_fpr_ci") or {}).get(
                        fpr_key)
                if v is None:
                    ax.text(0.04, yi, "n/a (not measurable)", va="center", fontsize=7.5,
                            transform=ax.get_yaxis_transform(), color="#555555")
                    continue
                ax.barh(yi, v, color=color(0 if key == "auc" else 1), alpha=0.8, height=0.6)
                if ci:
                    ax.errorbar(v, yi, xerr=[[v - ci[0]], [ci[1] - v]], fmt="none",
                                ecolor="#333333", lw=0.8, capsize=2)
            guess = 0.5 if key == "auc" else fpr
            ax.axvline(guess, color="#555555", ls="--", lw=1)
            ax.set_xlabel(what)
            ax.set_xlim(0, 1)
        ax_auc.set_yticks(y, names)
        ax_auc.set_title("AUC (0.5 = random guess)", fontsize=8.5)
        ax_tpr.set_title(f"TPR (dashed: random guess, {100 * fpr:g}%)", fontsize=8.5)
        return to_svg(fig, plot_id, "Strongest attack under each exposure setting")


def sweep_svg(rows: Sequence[Mapping], *, parameter: str, tpr_label: str,
              plot_id: str = "plot-sweep") -> str:
    """Privacy-utility trade-off of a sweep: test accuracy against the attack's TPR (each
    point labelled by its setting), and AUC and accuracy against the setting."""
    import matplotlib

    values = [r["value"] for r in rows]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    x = np.asarray(values, dtype=np.float64) if numeric else np.arange(len(values))
    acc = np.array([np.nan if r.get("test_accuracy") is None else r["test_accuracy"]
                    for r in rows], dtype=np.float64)
    auc = np.array([np.nan if r.get("auc") is None else r["auc"] for r in rows],
                   dtype=np.float64)
    tpr = np.array([np.nan if r.get("tpr") is None else r["tpr"] for r in rows],
                   dtype=np.float64)
    with matplotlib.rc_context(_RC):
        fig = _figure(8.0, 3.0)
        ax_pu, ax_v = fig.subplots(1, 2)
        ax_pu.plot(acc, tpr, "o-", color=color(1), lw=1)
        for a, t, v in zip(acc, tpr, values, strict=True):
            if np.isfinite(a) and np.isfinite(t):
                ax_pu.annotate(str(v), (a, t), textcoords="offset points", xytext=(4, 4),
                               fontsize=7.5)
        ax_pu.set(xlabel="test accuracy (utility)", ylabel=tpr_label,
                  title="privacy-utility trade-off")
        ax_v.plot(x, auc, "o-", color=color(0), label="AUC")
        ax_v.plot(x, acc, "s--", color=color(2), label="test accuracy")
        if not numeric:
            ax_v.set_xticks(x, [str(v) for v in values])
        elif len(x) > 2 and np.all(x > 0) and x.max() / x.min() >= 100:
            ax_v.set_xscale("log")
        ax_v.set(xlabel=parameter, title=f"AUC and accuracy by {parameter}")
        ax_v.legend(fontsize=7.5)
        return to_svg(fig, plot_id, "Privacy-utility trade-off of the sweep")
