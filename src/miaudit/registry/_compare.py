"""What changed between two registered runs (pure functions over their stored rows)."""

from __future__ import annotations

from typing import Any

#: The rule of ``beyond_intervals``, as reported by :meth:`Registry.compare`.
RULE = ("a figure changed beyond the intervals when the two runs' confidence intervals "
        "(95% at the default alpha = 0.05) do not overlap; overlapping intervals do not show "
        "a change, and a figure without an interval in either run is not judged (null)")

#: Compared figures: (name, value column, interval columns or None).
FIGURES = (
    ("auc", "auc", ("auc_lo", "auc_hi")),
    ("tpr_at_1%_fpr", "tpr_at_1", ("tpr_at_1_lo", "tpr_at_1_hi")),
    ("tpr_at_0.1%_fpr", "tpr_at_0_1", ("tpr_at_0_1_lo", "tpr_at_0_1_hi")),
    ("epsilon_lower_bound", "epsilon_lb", None),
)


def _diff(a: Any, b: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Leaves that differ between two JSON values, keyed by dotted path."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: dict[str, dict[str, Any]] = {}
        for key in sorted(set(a) | set(b), key=str):
            out.update(_diff(a.get(key), b.get(key), f"{path}.{key}" if path else str(key)))
        return out
    if a == b:
        return {}
    return {path or "(value)": {"a": a, "b": b}}


def beyond(ci_a: tuple[float | None, float | None],
           ci_b: tuple[float | None, float | None]) -> bool | None:
    """True when two intervals do not overlap, None when either is missing."""
    if None in ci_a or None in ci_b:
        return None
    return bool(ci_a[1] < ci_b[0] or ci_b[1] < ci_a[0])  # type: ignore[operator]


def compare_figures(row_a: dict[str, Any], row_b: dict[str, Any]) -> dict[str, Any]:
    """Each figure of one attack in two runs, its change and whether it is beyond the
    intervals."""
    out: dict[str, Any] = {}
    for name, col, ci_cols in FIGURES:
        va, vb = row_a.get(col), row_b.get(col)
        entry: dict[str, Any] = {"a": va, "b": vb,
                                 "change": None if va is None or vb is None else vb - va}
        if ci_cols is None:
            entry["beyond_intervals"] = None
        else:
            ci_a = (row_a.get(ci_cols[0]), row_a.get(ci_cols[1]))
            ci_b = (row_b.get(ci_cols[0]), row_b.get(ci_cols[1]))
            entry.update({"a_ci": list(ci_a), "b_ci": list(ci_b),
                          "beyond_intervals": beyond(ci_a, ci_b)})
        out[name] = entry
    return out


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Compare two runs as returned by :meth:`Registry.show`."""
    changed: dict[str, Any] = {}
    for key in ("exposure", "miaudit_version"):
        if a.get(key) != b.get(key):
            changed[key] = {"a": a.get(key), "b": b.get(key)}
    da, db = a.get("dataset") or {}, b.get("dataset") or {}
    if da.get("fingerprint") != db.get("fingerprint"):
        changed["data"] = {"a": {"fingerprint": da.get("fingerprint"), "name": da.get("name")},
                           "b": {"fingerprint": db.get("fingerprint"), "name": db.get("name")}}
    settings = _diff(a.get("settings") or {}, b.get("settings") or {})
    if settings:
        changed["settings"] = settings
    ta = [m for m in a.get("models", []) if m["role"] == "target"]
    tb = [m for m in b.get("models", []) if m["role"] == "target"]
    recipe = _diff(ta[0].get("recipe") if ta else None, tb[0].get("recipe") if tb else None)
    if recipe:
        changed["model_recipe"] = recipe
    for key in ("name", "seed"):
        va, vb = (ta[0].get(key) if ta else None), (tb[0].get(key) if tb else None)
        if va != vb:
            changed[f"model_{key}"] = {"a": va, "b": vb}
    if sorted(m["content_hash"] for m in ta) != sorted(m["content_hash"] for m in tb):
        changed["target_models"] = {"a": sorted(m["id"] for m in ta),
                                    "b": sorted(m["id"] for m in tb)}

    attacks_a = {r["attack"]: r for r in a.get("attacks", [])}
    attacks_b = {r["attack"]: r for r in b.get("attacks", [])}
    both = [name for name in attacks_a if name in attacks_b]
    attacks = {name: compare_figures(attacks_a[name], attacks_b[name]) for name in both}
    beyond_list = [f"{name} {fig}" for name, figs in attacks.items()
                   for fig, e in figs.items() if e["beyond_intervals"]]
    return {
        "run_a": a["id"], "run_b": b["id"],
        "changed": changed,
        "attacks": attacks,
        "only_in_a": sorted(set(attacks_a) - set(attacks_b)),
        "only_in_b": sorted(set(attacks_b) - set(attacks_a)),
        "beyond_intervals": beyond_list,
        "verdict": (f"beyond the intervals: {', '.join(beyond_list)}" if beyond_list else
                    "no figure changed beyond the intervals"),
        "rule": RULE,
    }
