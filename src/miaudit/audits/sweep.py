"""DP auditing: privacy-utility sweeps over a recipe parameter, and the one-run canary audit.

* :func:`sweep` runs :func:`miaudit.audit` once per value of one recipe parameter
  (``dp_epsilon=1,4,16,inf``, ``weight_decay=0,1e-4,1e-3``, ``dropout=...``) and collects,
  per value, the test accuracy, the AUC, the TPR at each FPR level (with their intervals),
  the empirical epsilon lower bound of the attack, and the accountant's epsilon of DP-SGD
  recipes: the ``sweep`` section of ``summary.json`` that the HTML report renders, and a
  PNG plot.
* :func:`audit_one_run` trains ONE model with ``m`` canaries, each included with
  probability 1/2, and reports the one-run epsilon lower bound of Steinke, Nasr &
  Jagielski (2023) (:mod:`miaudit.metrics.one_run`) next to the accountant's epsilon. An
  empirical bound above the accountant's epsilon is impossible for a correct DP-SGD
  implementation: it is flagged loudly.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.metrics.one_run import OneRunBound, default_guesses, one_run_audit
from miaudit.metrics.one_run_fdp import GdpBound, one_run_gdp
from miaudit.results.folder import RUN_FILES
from miaudit.results.result import AuditResult
from miaudit.training import Recipe, make_recipe
from miaudit.training.recipes import _coerce, _parse_pairs, check_recipe

__all__ = ["OneRunResult", "SweepResult", "audit_one_run", "parse_sweep", "sweep"]

#: The run-folder name of the sweep's plot (written when the run folder accepts it).
SWEEP_PLOT = "sweep.png"
#: FPR level of the sweep's TPR column and plot when it is measurable.
SWEEP_FPR = "0.001"
#: Said beside a sweep with DP-SGD rows: picking a setting by these figures is itself a
#: use of the training data that no row's epsilon counts (Papernot & Steinke, "Hyperparameter
#: Tuning with Renyi Differential Privacy", ICLR 2022).
SEARCH_NOTE = (
    "Each row's accountant epsilon covers one training run of that setting. Choosing a "
    "setting by these figures is a search over the same training data, and the epsilon "
    "of the setting chosen does not include it (Papernot & Steinke, ICLR 2022): account "
    "for the search, or choose on data that is not private.")


# --------------------------------------------------------------------------- sweeps


@dataclass
class SweepResult:
    """What :func:`sweep` returns.

    Attributes
    ----------
    parameter : str
        The recipe parameter swept.
    rows : list of dict
        One per value, in order: ``value`` (JSON-ready: a number, or text such as ``"inf"``
        or ``"64,32"``), ``attack`` (whose figures the row holds), ``test_accuracy``,
        ``train_accuracy``, ``auc``, ``auc_ci``, ``tpr_at_fpr`` and ``tpr_at_fpr_ci`` (dicts
        by FPR level, as in ``summary.json``), ``epsilon_lower_bound`` and
        ``dp_epsilon_accountant`` (None without DP-SGD).
    attack : str or None
        The attack fixed for every row, or None: each row's strongest attack (highest TPR
        at the lowest measurable FPR, ties to the higher AUC; as the report's verdict).
    last : AuditResult
        The audit of the last value.
    summaries : list of dict
        Every value's ``summary.json`` content.
    """

    parameter: str
    rows: list[dict]
    attack: str | None
    last: AuditResult
    summaries: list[dict] = field(default_factory=list)

    def section(self) -> dict:
        """The ``sweep`` section of ``summary.json`` (read by the HTML and Markdown reports)."""
        section = {"parameter": self.parameter,
                   "attack": self.attack or "strongest per setting",
                   "fpr": _plot_fpr(self.rows), "rows": self.rows}
        if any(r.get("dp_epsilon_accountant") is not None for r in self.rows):
            section["search_note"] = SEARCH_NOTE
        return section

    def table(self) -> pd.DataFrame:
        """One row per value: the figures of :attr:`rows` with the TPR at the sweep's FPR."""
        fpr = _plot_fpr(self.rows)
        return pd.DataFrame([{
            self.parameter: r["value"], "attack": r["attack"],
            "test_accuracy": r["test_accuracy"], "auc": r["auc"],
            f"tpr_at_{fpr}_fpr" if fpr else "tpr": (r["tpr_at_fpr"] or {}).get(fpr),
            "epsilon_lower_bound": r["epsilon_lower_bound"],
            "dp_epsilon_accountant": r["dp_epsilon_accountant"]} for r in self.rows])

    def plot_png(self) -> bytes:
        """The privacy-utility plot as PNG bytes (see :func:`sweep_plot`)."""
        return sweep_plot(self.rows, parameter=self.parameter)

    def to_result(self) -> AuditResult:
        """The last value's audit with ``summary["sweep"]`` added, and the plot as the run
        folder's ``sweep.png`` where the run folder accepts that file."""
        last = self.last
        artifacts = dict(last.artifacts)
        if SWEEP_PLOT in RUN_FILES:
            artifacts[SWEEP_PLOT] = self.plot_png()
        return AuditResult(summary={**last.summary(), "sweep": self.section()},
                           scores=last.scores, metrics=last.metrics, signals=last.signals,
                           exposure_metrics=last.exposure_metrics, artifacts=artifacts)


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``"name=v1,v2,..."`` as the parameter and its values (``;`` separates values that
    hold commas themselves, such as ``hidden=64,32;128,64``).

    Examples
    --------
    >>> parse_sweep("dp_epsilon=1,4,16,inf")
    ('dp_epsilon', ['1', '4', '16', 'inf'])
    >>> parse_sweep("hidden=64,32;128")
    ('hidden', ['64,32', '128'])
    """
    name, sep, rest = text.partition("=")
    name = name.strip().replace("-", "_")
    sep_char = ";" if ";" in rest else ","
    values = [v.strip() for v in rest.split(sep_char) if v.strip()]
    if not sep or not name or not values:
        raise ConfigError(f"The sweep {text!r} is not of the form name=value1,value2,... "
                          "(e.g. dp_epsilon=1,4,16,inf).")
    return name, values


def sweep(
    param: str,
    values: Sequence[object],
    *,
    attack: str | None = None,
    on_value: Callable[[int, object], None] | None = None,
    **audit_kwargs,
) -> SweepResult:
    """Audit the same recipe once per value of one of its parameters.

    Parameters
    ----------
    param : str
        A recipe parameter (see :class:`~miaudit.training.Recipe`): ``dp_epsilon``,
        ``weight_decay``, ``dropout``, ``label_smoothing``, ``epochs``, ...
    values : sequence
        Its values, as numbers or text (``"inf"`` turns ``dp_epsilon`` off). Every value is
        checked before anything is trained.
    attack : str, optional
        The attack whose figures fill the rows; default: each value's strongest attack.
    on_value : callable, optional
        Called as ``on_value(index, value)`` before each audit (progress).
    **audit_kwargs
        Passed to :func:`miaudit.audit` (``data``, ``model``, ``model_params``,
        ``references``, ``seed``, ...); ``model`` must be a recipe name or a
        :class:`~miaudit.training.Recipe`, and ``model_params`` are the fixed overrides.

    Returns
    -------
    SweepResult
        ``.rows``, ``.section()`` (``summary["sweep"]``), ``.plot_png()``, ``.to_result()``.

    Examples
    --------
    >>> res = sweep("weight_decay", [0, 1e-2], data="wine", model="logistic",
    ...             model_params={"epochs": 2}, attacks=["loss"])
    >>> [r["value"] for r in res.rows], res.rows[0]["attack"]
    ([0.0, 0.01], 'loss')
    """
    from miaudit.audits.classification import audit

    recipes = _swept_recipes(param, values, audit_kwargs.get("model", "mlp"),
                             audit_kwargs.get("model_params"))
    if attack is not None and audit_kwargs.get("attacks") is not None \
            and attack not in audit_kwargs["attacks"]:
        raise ConfigError(f"The sweep's attack {attack!r} is not among the attacks run "
                          f"({', '.join(audit_kwargs['attacks'])}).")
    kwargs = {k: v for k, v in audit_kwargs.items() if k not in ("model", "model_params")}
    rows, summaries, last = [], [], None
    for i, (shown, recipe) in enumerate(recipes):
        if on_value is not None:
            on_value(i, shown)
        last = audit(model=recipe, **kwargs)
        summary = last.summary()
        rows.append(_row(summary, shown, attack))
        summaries.append(summary)
    assert last is not None
    return SweepResult(param, rows, attack, last, summaries)


def _swept_recipes(param: str, values: Sequence[object], model, model_params
                   ) -> list[tuple[object, Recipe]]:
    """``(shown value, recipe)`` per value, every recipe checked up front."""
    if not isinstance(model, str | Recipe):
        raise ConfigError("A sweep trains its models from a recipe: pass model='mlp' (or "
                          "another recipe name, or a Recipe), not a trained model.")
    if not values:
        raise ConfigError(f"The sweep over {param!r} has no values.")
    key = param.strip().replace("-", "_")
    if isinstance(model, Recipe):
        if model_params:
            raise ConfigError("Give model_params with a recipe name, not with a Recipe "
                              "object (use dataclasses.replace on the Recipe instead).")
        base = model
    else:
        fixed = model_params or {}
        if not isinstance(fixed, dict):
            fixed = _parse_pairs(fixed)
        if key in fixed:
            raise ConfigError(f"{key!r} is both swept and fixed in model_params; drop one.")
        base = make_recipe(model, fixed)
    out = []
    for v in values:
        coerced = _coerce(key, v)
        recipe = dataclasses.replace(base, **{key: coerced})
        check_recipe(recipe)
        out.append((_shown(getattr(recipe, key)), recipe))
    return out


def _shown(value: object) -> object:
    """A swept value as it appears in ``summary.json`` (JSON-ready)."""
    if value is None:
        return "inf"  # dp_epsilon off
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _row(summary: dict, shown: object, attack: str | None) -> dict:
    from miaudit.audits.exposures import strongest_attack

    attacks = summary["attacks"]
    fprs = [str(f) for f in summary["settings"]["fprs"]]
    name = attack if attack is not None else strongest_attack(attacks, fprs)
    if name not in attacks:
        raise ConfigError(f"The sweep's attack {name!r} did not run; the audit ran "
                          f"{', '.join(attacks)}.")
    e = attacks[name]
    target = summary["target"]
    return {
        "value": shown, "attack": name,
        "test_accuracy": target.get("test_accuracy"),
        "train_accuracy": target.get("train_accuracy"),
        "auc": e["auc"], "auc_ci": e.get("auc_ci"),
        "tpr_at_fpr": e["tpr_at_fpr"], "tpr_at_fpr_ci": e.get("tpr_at_fpr_ci"),
        "epsilon_lower_bound": e.get("epsilon_lower_bound"),
        "dp_epsilon_accountant": target.get("dp_epsilon_accountant"),
    }


def _plot_fpr(rows: list[dict]) -> str | None:
    """0.1% when some row measured it, else the lowest level some row measured."""
    keys = sorted({k for r in rows for k in (r.get("tpr_at_fpr") or {})}, key=float)
    measured = [k for k in keys if any((r.get("tpr_at_fpr") or {}).get(k) is not None
                                       for r in rows)]
    if SWEEP_FPR in measured:
        return SWEEP_FPR
    return measured[0] if measured else None


def sweep_plot(rows: list[dict], *, parameter: str) -> bytes:
    """PNG: test accuracy against the TPR at 0.1% FPR (left) and against the AUC (right),
    each point labelled by its value, with the intervals as error bars.

    Where no row measured the TPR at 0.1% FPR (fewer than 1,000 non-members) the lowest
    measured level is plotted instead, and the axis says which.
    """
    from matplotlib.figure import Figure

    fpr = _plot_fpr(rows)
    acc = np.array([_num(r.get("test_accuracy")) for r in rows])
    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_tpr, ax_auc = fig.subplots(1, 2)
    panels = [(ax_tpr, "tpr", f"TPR at {float(fpr):.2%} FPR" if fpr else "TPR (not measurable)",
               [(r.get("tpr_at_fpr") or {}).get(fpr) if fpr else None for r in rows],
               [(r.get("tpr_at_fpr_ci") or {}).get(fpr) if fpr else None for r in rows]),
              (ax_auc, "auc", "AUC", [r.get("auc") for r in rows],
               [r.get("auc_ci") for r in rows])]
    for ax, _, label, vals, cis in panels:
        y = np.array([_num(v) for v in vals])
        lo = np.array([y[i] - _num(ci[0]) if ci else 0.0 for i, ci in enumerate(cis)])
        hi = np.array([_num(ci[1]) - y[i] if ci else 0.0 for i, ci in enumerate(cis)])
        ok = np.isfinite(acc) & np.isfinite(y)
        if ok.any():
            ax.errorbar(acc[ok], y[ok], yerr=np.vstack([lo[ok], hi[ok]]).clip(min=0),
                        fmt="o-", color="#1f5fa8", ecolor="#9bb7d9", capsize=3, lw=1)
        for a, v, r in zip(acc, y, rows, strict=True):
            if np.isfinite(a) and np.isfinite(v):
                ax.annotate(f"{parameter}={r['value']}", (a, v), textcoords="offset points",
                            xytext=(4, 5), fontsize=7)
        ax.set_xlabel("test accuracy (utility)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_tpr.set_title(f"privacy-utility trade-off over {parameter}", fontsize=9)
    ax_auc.axhline(0.5, color="grey", ls=":", lw=1)
    ax_auc.set_title("AUC (0.5 = random guess), 95% intervals", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=130)
    return buf.getvalue()


def _num(v) -> float:
    return float("nan") if v is None else float(v)


# --------------------------------------------------------------------------- one-run audit


@dataclass
class OneRunResult:
    """What :func:`audit_one_run` returns.

    Attributes
    ----------
    bound : OneRunBound
        The one-run lower bound at the audit's ``delta`` (the recipe's ``dp_delta``).
    bound_pure : OneRunBound
        The same guesses against pure DP (delta = 0): the paper's headline bound.
    gdp : GdpBound
        The same guesses read through Gaussian DP (Mahloujifar et al. 2024): the empirical
        ``mu``, and its epsilon at ``delta``, a lower bound only if the privacy curve is
        Gaussian (DP-SGD's nearly is; :mod:`miaudit.metrics.one_run_fdp`).
    dp_epsilon_accountant : float or None
        The accountant's epsilon of the trained model at ``dp_delta`` (None: no DP-SGD).
    exceeds_accountant : bool
        The empirical bound is above the accountant's epsilon: impossible for correct
        DP-SGD and accounting, so a bug somewhere (training, accounting, or this audit).
    canaries : pandas.DataFrame
        One row per canary: ``record_id``, ``included``, ``label`` (the label it was
        trained with when included), ``true_label``, ``score`` (higher = more likely
        included).
    info : dict
        Data, recipe, training and utility facts (see :meth:`summary`).
    """

    bound: OneRunBound
    bound_pure: OneRunBound
    gdp: GdpBound
    dp_epsilon_accountant: float | None
    exceeds_accountant: bool
    canaries: pd.DataFrame
    info: dict

    @property
    def flag(self) -> str | None:
        """A loud message when the empirical bound exceeds the accountant's epsilon."""
        if not self.exceeds_accountant:
            return None
        return (f"a bug somewhere: the empirical epsilon lower bound "
                f"{self.bound.epsilon:.3f} exceeds the accountant's epsilon "
                f"{self.dp_epsilon_accountant:.3f} (delta {self.bound.delta:g}); DP-SGD, "
                "its accounting or this audit is wrong")

    def summary(self) -> dict:
        """JSON-ready: ``one_run`` (the bound at delta), ``one_run_pure_dp``,
        ``dp_epsilon_accountant``, ``exceeds_accountant``, ``flag`` and the facts."""
        return {**self.info, "one_run": self.bound.to_dict(),
                "one_run_pure_dp": self.bound_pure.to_dict(),
                "one_run_gdp": self.gdp.to_dict(),
                "dp_epsilon_accountant": self.dp_epsilon_accountant,
                "exceeds_accountant": self.exceeds_accountant, "flag": self.flag}


def audit_one_run(
    *,
    data: Dataset | str | Path,
    label_column: str | None = None,
    id_column: str | None = None,
    n_records: int | None = None,
    model: str | Recipe = "mlp",
    model_params: dict | Sequence[str] | None = None,
    canaries: int = 1000,
    mislabel: bool = True,
    k_pos: int | Sequence[int] | None = None,
    k_neg: int | Sequence[int] | None = None,
    beta: float = 0.05,
    delta: float | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> OneRunResult:
    """One-run DP audit (Steinke, Nasr & Jagielski 2023): train ONE model with canaries.

    ``canaries`` records are drawn from the (de-duplicated) data; every other record is
    always trained on, and each canary is included independently with probability 1/2.
    With ``mislabel`` (default), a canary is trained with a random wrong label: an
    outlier whose inclusion the model shows far more than an ordinary record's, for a
    stronger audit. Each canary is scored with the LOSS attack (minus the loss on the label
    it would have been trained with); the ``k_pos`` highest are guessed in, the ``k_neg``
    lowest out, and :func:`~miaudit.metrics.one_run.one_run_audit` turns the correct guesses
    into an epsilon lower bound.

    Parameters
    ----------
    data : Dataset, str or Path
    label_column, id_column, n_records
        As for :func:`miaudit.audit`.
    model : str or Recipe, default "mlp"
    model_params : dict or list of "key=value", optional
        Recipe overrides, e.g. ``["dp_epsilon=4"]``.
    canaries : int, default 1000
        ``m``; at most all records but two.
    mislabel : bool, default True
    k_pos, k_neg : int or sequence of int, optional
        Guesses on each side; default a tenth of the canaries each (fixed in advance, so
        no correction). Sequences: every pair is tried with a Bonferroni correction.
    beta : float, default 0.05
        Significance level of the bound.
    delta : float, optional
        The delta of the bound; default the recipe's ``dp_delta`` (1e-5), the delta at
        which the accountant's epsilon is stated. A smaller delta than ``dp_delta`` is
        refused for a DP-SGD recipe (the comparison would not be valid).
    seed : int, default 0
        Seeds the canaries, their inclusion and labels, and the training.
    device : str, default "cpu"

    Returns
    -------
    OneRunResult
        With a :class:`~miaudit.errors.MiauditWarning` when the bound exceeds the
        accountant's epsilon.
    """
    from scipy.special import log_softmax

    from miaudit.audits.classification import _check_device
    from miaudit.training import train

    _check_device(device)
    if not isinstance(data, Dataset):
        data = load_dataset(data, label_column=label_column, id_column=id_column,
                            n_records=n_records, seed=seed)
    recipe = _one_run_recipe(model, model_params)
    pool = data.subset(np.flatnonzero(~data.duplicate_mask()))
    n, n_classes = pool.n_records, data.n_classes
    if not 2 <= canaries <= n - 2:
        raise ConfigError(f"canaries must lie between 2 and {n - 2} (the {n} distinct "
                          f"records but two), got {canaries}.")
    if mislabel and n_classes < 2:
        raise ConfigError("Mislabelled canaries need at least two classes.")
    audit_delta, kp, kn = _one_run_settings(recipe, delta, canaries, k_pos, k_neg)
    c = _draw_canaries(pool, n_classes, canaries, mislabel, seed)
    X_train = np.concatenate([pool.X[c.base], pool.X[c.idx][c.included]])
    y_train = np.concatenate([pool.y[c.base], c.labels[c.included]])
    trained = train(recipe, X_train, y_train, n_classes=n_classes, seed=seed, device=device)
    logp = log_softmax(_logits(trained.module, pool.X, device), axis=1)
    scores = logp[c.idx, c.labels]  # LOSS attack: minus the loss on the canary's label
    bound = one_run_audit(scores, c.included, k_pos=kp, k_neg=kn, beta=beta,
                          delta=audit_delta)
    pure = one_run_audit(scores, c.included, k_pos=kp, k_neg=kn, beta=beta, delta=0.0)
    gdp = one_run_gdp(scores, c.included, k_pos=kp, k_neg=kn, beta=beta,
                      delta=audit_delta if audit_delta > 0 else recipe.dp_delta)
    eps_acc = None if trained.privacy is None else float(trained.privacy["epsilon"])
    exceeds = eps_acc is not None and bound.epsilon > eps_acc
    predicted = logp.argmax(axis=1)
    held_out = ~c.included  # never trained on: the excluded canaries, with their true labels
    info = {
        "data": {"name": pool.name, "n_records": n, "fingerprint": data.fingerprint},
        "target": {"model": recipe.name, "recipe": recipe.to_dict(),
                   "description": recipe.describe(), "seed": seed,
                   "n_train_records": len(y_train),
                   "train_accuracy": float(np.mean(predicted[c.base] == pool.y[c.base])),
                   "held_out_accuracy": (float(np.mean(predicted[c.idx][held_out]
                                                       == c.true_labels[held_out]))
                                         if held_out.any() else None),
                   "privacy": trained.privacy},
        "canaries": {"n": canaries, "mislabelled": mislabel,
                     "n_included": int(c.included.sum()), "attack": "loss",
                     "inclusion_probability": 0.5},
        "method": ("one-run audit (Steinke, Nasr & Jagielski 2023): guesses 'in' for the "
                   "k_pos highest LOSS scores, 'out' for the k_neg lowest; bound = smallest "
                   "eps not rejected by the binomial-tail test at significance beta"
                   + (f" (Bonferroni over {bound.n_hypotheses} (k_pos, k_neg) pairs)"
                      if bound.n_hypotheses > 1 else " (k_pos, k_neg fixed in advance)")),
    }
    table = pd.DataFrame({"record_id": pool.ids[c.idx], "included": c.included,
                          "label": c.labels, "true_label": c.true_labels, "score": scores})
    result = OneRunResult(bound, pure, gdp, eps_acc, exceeds, table, info)
    if exceeds:
        warnings.warn(f"!!! {result.flag.upper()} !!!", MiauditWarning, stacklevel=2)
    return result


def _one_run_settings(recipe: Recipe, delta, canaries: int, k_pos, k_neg):
    """The delta of a one-run bound (default the recipe's ``dp_delta``; a smaller one is
    refused with DP-SGD, whose accountant states epsilon at ``dp_delta``) and the guesses
    on each side (default a tenth of the canaries each)."""
    audit_delta = recipe.dp_delta if delta is None else float(delta)
    if recipe.dp and audit_delta < recipe.dp_delta:
        raise ConfigError(f"delta={audit_delta:g} is below the recipe's dp_delta="
                          f"{recipe.dp_delta:g}: the accountant's epsilon holds at dp_delta, "
                          "so compare at a delta >= dp_delta.")
    kp = default_guesses(canaries) if k_pos is None else k_pos
    kn = default_guesses(canaries) if k_neg is None else k_neg
    return audit_delta, kp, kn


def _one_run_recipe(model: str | Recipe, model_params) -> Recipe:
    """The recipe of a one-run audit: a name with overrides, or a checked Recipe."""
    if not isinstance(model, Recipe):
        return make_recipe(model, model_params)
    if model_params:
        raise ConfigError("Give model_params with a recipe name, not with a Recipe.")
    check_recipe(model)
    return model


class _Canaries(NamedTuple):
    """The canaries of a one-run audit: their records, inclusion and training labels."""

    idx: np.ndarray  # pool indices of the canaries
    included: np.ndarray  # each included with probability 1/2
    true_labels: np.ndarray
    labels: np.ndarray  # the labels they train with (a random wrong one when mislabelled)
    base: np.ndarray  # the other records, always trained on


def _draw_canaries(pool: Dataset, n_classes: int, canaries: int, mislabel: bool, seed: int
                   ) -> _Canaries:
    """Draw the canaries, their inclusion and (mislabelled) labels, seeded."""
    n = pool.n_records
    rng = np.random.default_rng([seed, 11])
    idx = np.sort(rng.choice(n, canaries, replace=False))
    included = rng.random(canaries) < 0.5
    true_labels = pool.y[idx]
    labels = ((true_labels + rng.integers(1, n_classes, size=canaries)) % n_classes
              if mislabel else true_labels.copy())
    return _Canaries(idx, included, true_labels, labels, np.setdiff1d(np.arange(n), idx))


def _logits(module, X: np.ndarray, device: str) -> np.ndarray:
    import torch

    module.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), 8192):
            xb = torch.as_tensor(np.ascontiguousarray(X[start : start + 8192],
                                                      dtype=np.float32), device=device)
            out.append(module(xb).double().cpu().numpy())
    return np.concatenate(out)
