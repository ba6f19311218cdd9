"""White-box one-run DP audit: gradient canaries inserted into DP-SGD (Steinke, Nasr &
Jagielski 2023, white-box setting; Dirac canaries of Nasr et al. 2023).

:func:`audit_one_run_white_box` trains ONE model with
:func:`~miaudit.training.dp_canaries.train_with_gradient_canaries`: ``m`` canary gradients
of norm ``C`` (the clipping norm), each included with probability 1/2 and, when included,
added to the sum of clipped per-example gradients before the noise at every step where
the Poisson sampling draws it (rate ``q``, as every record: the setting the accountant
covers). The auditor sees every privatized gradient and scores each canary from its
projections ``y[t, i] = <u_i, privatized sum of step t>`` (higher = more likely
included; :func:`canary_scores`):

* ``"sum"`` (default; the paper's score): ``sum_t y[t, i]``, the canary's share of the
  total parameter change, in gradient units (with plain SGD, ``<u_i, theta_0 - theta_T>
  B / lr``). An included canary adds ``C`` times the number of steps it was drawn
  (``C T q`` on average) to Gaussian noise of standard deviation ``sigma C sqrt(T)`` and
  to the model's own gradient on that direction (the same in and out).
* ``"llr"``: ``sum_t log(1 - q + q exp(y[t, i] / (sigma^2 C) - 1 / (2 sigma^2)))``, the
  log-likelihood ratio of "included" against "excluded" for one canary alone in the
  Poisson-subsampled Gaussian mechanism (the Neyman-Pearson test of each step's
  observation, ignoring the model's own gradient): it weighs a step where the canary was
  drawn far more than the plain sum does. Needs noise (``sigma > 0``).

Both are fixed before training and read nothing of the inclusion, so the one-run bounds
(:func:`~miaudit.metrics.one_run.one_run_audit`, binomial; :func:`~miaudit.metrics.
one_run_fdp.one_run_gdp`, Gaussian DP) hold as for the black-box audit. A bound above
the accountant's epsilon is impossible for correct DP-SGD and accounting and is flagged.

References
----------
Steinke, Nasr & Jagielski (2023), "Privacy auditing with one (1) training run", NeurIPS.
Nasr et al. (2023), "Tight auditing of differentially private machine learning", USENIX
Security.
Mahloujifar, Melis & Chaudhuri (2024), "Auditing f-differential privacy in one run".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from miaudit.data import Dataset, load_dataset
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.metrics.one_run import (
    OneRunBound,
    one_run_audit,
    one_run_epsilon,
)
from miaudit.metrics.one_run_fdp import GdpBound, one_run_gdp
from miaudit.training import Recipe

__all__ = ["SCORES", "WhiteBoxResult", "audit_one_run_white_box", "canary_scores"]

#: The white-box canary scores (see the module).
SCORES = ("sum", "llr")


def canary_scores(projections: ArrayLike, *, score: str = "sum", sample_rate: float = 1.0,
                  noise_multiplier: float = 0.0, max_grad_norm: float = 1.0) -> np.ndarray:
    """Each canary's white-box score from its per-step projections; higher = more likely
    included.

    Parameters
    ----------
    projections : array of shape (steps, m)
        ``y[t, i] = <u_i, privatized gradient sum of step t>`` (gradient units).
    score : {"sum", "llr"}, default "sum"
        ``"sum"``: ``sum_t y[t, i]`` (Steinke et al. 2023). ``"llr"``: the log-likelihood
        ratio of one canary in the Poisson-subsampled Gaussian mechanism, ``sum_t log(1 -
        q + q exp(y / (sigma^2 C) - 1 / (2 sigma^2)))``.
    sample_rate, noise_multiplier, max_grad_norm : float
        ``q``, ``sigma`` and ``C`` of the training (only ``"llr"`` reads them).

    Returns
    -------
    ndarray of shape (m,)

    Examples
    --------
    >>> y = np.array([[1.0, 0.0], [1.0, 0.0]])  # canary 0 drawn at both steps, no noise
    >>> canary_scores(y).tolist()
    [2.0, 0.0]
    >>> s = canary_scores(y, score="llr", sample_rate=0.5, noise_multiplier=1.0)
    >>> bool(s[0] > s[1])
    True
    """
    y = np.asarray(projections, dtype=np.float64)
    if score == "sum":
        return y.sum(axis=0)
    if score != "llr":
        raise ConfigError(f"The white-box score {score!r} is unknown; use one of "
                          f"{', '.join(SCORES)}.")
    if not noise_multiplier > 0:
        raise ConfigError("The 'llr' score needs DP-SGD noise (noise multiplier > 0); "
                          "without noise use score 'sum'.")
    if not 0 < sample_rate <= 1:
        raise ConfigError(f"sample_rate must lie in (0, 1], got {sample_rate}.")
    a = y / (noise_multiplier**2 * max_grad_norm) - 0.5 / noise_multiplier**2
    with np.errstate(divide="ignore"):  # q = 1: log(1 - q) = -inf, handled by logaddexp
        return np.logaddexp(np.log1p(-sample_rate), math.log(sample_rate) + a).sum(axis=0)


@dataclass
class WhiteBoxResult:
    """What :func:`audit_one_run_white_box` returns (the fields of
    :class:`~miaudit.audits.sweep.OneRunResult`, for gradient canaries).

    Attributes
    ----------
    bound : OneRunBound
        The binomial one-run bound at the audit's ``delta``.
    bound_pure : OneRunBound
        The same guesses against pure DP (delta = 0).
    gdp : GdpBound
        The same guesses read through Gaussian DP: a lower bound if the privacy curve is
        Gaussian (DP-SGD's nearly is).
    dp_epsilon_accountant : float or None
        The RDP accountant's epsilon at ``dp_delta`` (None: no noise).
    exceeds_accountant : bool
        The binomial bound is above the accountant's epsilon (a bug somewhere).
    ceiling : float
        The largest binomial bound these guesses could give (every guess right).
    canaries : pandas.DataFrame
        One row per canary: ``canary``, ``parameter`` (Dirac: the parameter and flat
        index, e.g. ``"0.weight[1234]"``; random: ``"random direction"``),
        ``included``, ``score`` (higher = more likely included).
    info : dict
        Data, recipe, canary and training facts (see :meth:`summary`).
    trace : CanaryTrace or None
        The recorded projections (:class:`~miaudit.training.dp_canaries.CanaryTrace`), to
        score the same run otherwise (:func:`canary_scores`); not in :meth:`summary`.
    """

    bound: OneRunBound
    bound_pure: OneRunBound
    gdp: GdpBound
    dp_epsilon_accountant: float | None
    exceeds_accountant: bool
    ceiling: float
    canaries: pd.DataFrame
    info: dict
    trace: object = field(default=None, repr=False)

    @property
    def flag(self) -> str | None:
        """A loud message when the bound exceeds the accountant's epsilon."""
        if not self.exceeds_accountant:
            return None
        return (f"a bug somewhere: the white-box epsilon lower bound "
                f"{self.bound.epsilon:.3f} exceeds the accountant's epsilon "
                f"{self.dp_epsilon_accountant:.3f} (delta {self.bound.delta:g}); DP-SGD, "
                "its accounting or this audit is wrong")

    @property
    def tightness_ratio(self) -> float | None:
        """Binomial bound / accountant's epsilon (None without an accountant)."""
        acc = self.dp_epsilon_accountant
        return None if acc is None or acc <= 0 else self.bound.epsilon / acc

    @property
    def tightness(self) -> str:
        """One sentence: how much of the accountant's epsilon the audit certifies."""
        b, g, acc = self.bound.epsilon, self.gdp.epsilon, self.dp_epsilon_accountant
        limit = (f"{self.bound.n_guesses} guesses among {self.bound.n_canaries} canaries "
                 f"cannot certify more than {self.ceiling:.2f}")
        if acc is None:
            return (f"No accountant (no DP-SGD noise): the white-box audit certifies epsilon "
                    f">= {b:.2f} (binomial; {g:.2f} read as Gaussian DP); {limit}.")
        return (f"The white-box bound {b:.2f} is {b / acc:.0%} of the accountant's epsilon "
                f"{acc:.2f} ({g:.2f}, {g / acc:.0%}, read as Gaussian DP); {limit}, so the "
                "gap is the accountant's slack, the score's power, or the guesses' limit.")

    def summary(self) -> dict:
        """JSON-ready: the facts, ``one_run``, ``one_run_pure_dp``, ``one_run_gdp``,
        ``dp_epsilon_accountant``, ``exceeds_accountant``, ``flag``, ``ceiling``,
        ``tightness_ratio`` and the ``tightness`` sentence."""
        return {**self.info, "one_run": self.bound.to_dict(),
                "one_run_pure_dp": self.bound_pure.to_dict(),
                "one_run_gdp": self.gdp.to_dict(),
                "dp_epsilon_accountant": self.dp_epsilon_accountant,
                "exceeds_accountant": self.exceeds_accountant, "flag": self.flag,
                "ceiling": self.ceiling, "tightness_ratio": self.tightness_ratio,
                "tightness": self.tightness}


def audit_one_run_white_box(
    *,
    data: Dataset | str | Path,
    label_column: str | None = None,
    id_column: str | None = None,
    n_records: int | None = None,
    model: str | Recipe = "mlp",
    model_params: dict | Sequence[str] | None = None,
    canaries: int = 1000,
    canary_kind: str = "dirac",
    score: str = "sum",
    insert: bool = True,
    k_pos: int | Sequence[int] | None = None,
    k_neg: int | Sequence[int] | None = None,
    beta: float = 0.05,
    delta: float | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> WhiteBoxResult:
    """White-box one-run DP audit: train ONE model with ``m`` gradient canaries.

    Every record of ``data`` is trained on; the canaries are gradients, not records (see
    the module and :mod:`miaudit.training.dp_canaries`). The ``k_pos`` highest scores are
    guessed in, the ``k_neg`` lowest out, and the guesses give the binomial and GDP
    one-run bounds.

    Parameters
    ----------
    data : Dataset, str or Path
    label_column, id_column, n_records
        As for :func:`miaudit.audit`.
    model : str or Recipe, default "mlp"
    model_params : dict or list of "key=value", optional
        Recipe overrides, e.g. ``["dp_epsilon=4", "epochs=30"]``. Without
        ``dp_epsilon`` / ``dp_noise_multiplier`` the model trains with clipping and no
        noise (no accountant).
    canaries : int, default 1000
        ``m``, at most the model's number of parameters.
    canary_kind : {"dirac", "random"}, default "dirac"
    score : {"sum", "llr"}, default "sum"
        See :func:`canary_scores`.
    insert : bool, default True
        False: a null run (canaries drawn, nothing inserted); its bound is 0 in at least
        95% of runs.
    k_pos, k_neg : int or sequence of int, optional
        Guesses on each side; default a tenth of the canaries each (fixed in advance).
        Sequences: every pair tried with a Bonferroni correction.
    beta : float, default 0.05
    delta : float, optional
        Default the recipe's ``dp_delta`` (1e-5); a smaller one is refused with DP-SGD.
    seed : int, default 0
        Seeds the canaries, their inclusion, the initialisation, sampling and noise.
    device : str, default "cpu"

    Returns
    -------
    WhiteBoxResult
        With a :class:`~miaudit.errors.MiauditWarning` when the bound exceeds the
        accountant's epsilon.

    Examples
    --------
    >>> res = audit_one_run_white_box(data="wine", model_params=["hidden=512", "epochs=4",
    ...     "dp_noise_multiplier=1"], canaries=100, seed=0)
    >>> res.bound.n_guesses, res.exceeds_accountant
    (20, False)
    """
    from miaudit.audits.classification import _check_device
    from miaudit.audits.sweep import _one_run_recipe, _one_run_settings
    from miaudit.training.dp_canaries import (
        CANARY_KINDS,
        train_with_gradient_canaries,
    )

    _check_device(device)
    if canary_kind not in CANARY_KINDS:
        raise ConfigError(f"The gradient canary kind {canary_kind!r} is unknown; use one of "
                          f"{', '.join(CANARY_KINDS)}.")
    if score not in SCORES:
        raise ConfigError(f"The white-box score {score!r} is unknown; use one of "
                          f"{', '.join(SCORES)}.")
    recipe = _one_run_recipe(model, model_params)
    if score == "llr" and not recipe.dp:
        raise ConfigError("The 'llr' score needs DP-SGD noise (set dp_epsilon or "
                          "dp_noise_multiplier); without noise use score 'sum'.")
    if canaries < 2:
        raise ConfigError(f"canaries must be at least 2, got {canaries}.")
    audit_delta, kp, kn = _one_run_settings(recipe, delta, canaries, k_pos, k_neg)
    if not isinstance(data, Dataset):
        data = load_dataset(data, label_column=label_column, id_column=id_column,
                            n_records=n_records, seed=seed)
    run = train_with_gradient_canaries(recipe, data.X, data.y, n_classes=data.n_classes,
                                       canaries=canaries, kind=canary_kind, insert=insert,
                                       seed=seed, device=device)
    tr, can = run.trace, run.canaries
    scores = canary_scores(tr.projections, score=score, sample_rate=tr.sample_rate,
                           noise_multiplier=tr.noise_multiplier,
                           max_grad_norm=tr.max_grad_norm)
    bound = one_run_audit(scores, can.included, k_pos=kp, k_neg=kn, beta=beta,
                          delta=audit_delta)
    pure = one_run_audit(scores, can.included, k_pos=kp, k_neg=kn, beta=beta, delta=0.0)
    gdp = one_run_gdp(scores, can.included, k_pos=kp, k_neg=kn, beta=beta,
                      delta=audit_delta if audit_delta > 0 else recipe.dp_delta)
    ceiling = one_run_epsilon(canaries, bound.n_guesses, bound.n_guesses,
                              beta=beta / bound.n_hypotheses, delta=audit_delta)
    privacy = run.model.privacy
    eps_acc = None if privacy is None else float(privacy["epsilon"])
    exceeds = eps_acc is not None and bound.epsilon > eps_acc
    names = _parameter_names(run.model.module, can)
    train_acc = _accuracy(run.model.module, data.X, data.y, device)
    info = {
        "data": {"name": data.name, "n_records": data.n_records,
                 "fingerprint": data.fingerprint},
        "target": {"model": recipe.name, "recipe": recipe.to_dict(),
                   "description": recipe.describe(), "seed": seed,
                   "n_train_records": data.n_records, "n_parameters": can.n_parameters,
                   "train_accuracy": train_acc, "privacy": privacy},
        "canaries": {"n": can.m, "kind": can.kind, "n_included": int(can.included.sum()),
                     "inclusion_probability": 0.5, "inserted": tr.inserted,
                     "gradient_norm": tr.max_grad_norm, "sample_rate": tr.sample_rate,
                     "sampling": "Poisson at the records' rate, every step (as each record)",
                     "score": score},
        "training": {"steps": tr.steps, "noise_multiplier": tr.noise_multiplier,
                     "max_grad_norm": tr.max_grad_norm, "sample_rate": tr.sample_rate},
        # trainer-side facts in the units of the "sum" score; the audit reads none of them
        "diagnostics": {"sum_score_gap": tr.max_grad_norm * tr.steps * tr.sample_rate,
                        "sum_score_noise_std": (tr.noise_multiplier * tr.max_grad_norm
                                                * math.sqrt(tr.steps)),
                        "own_gradient_std": float(np.std(tr.data_part))},
        "method": ("white-box one-run audit (Steinke, Nasr & Jagielski 2023): gradient "
                   f"canaries ({can.kind}) of norm C added after clipping, before the noise, "
                   f"when Poisson-sampled; score '{score}' of the privatized gradients; "
                   "guesses 'in' for the k_pos highest, 'out' for the k_neg lowest"
                   + (f" (Bonferroni over {bound.n_hypotheses} (k_pos, k_neg) pairs)"
                      if bound.n_hypotheses > 1 else " (k_pos, k_neg fixed in advance)")
                   + ("" if insert else "; NULL RUN: nothing inserted")),
    }
    table = pd.DataFrame({"canary": np.arange(can.m), "parameter": names,
                          "included": can.included, "score": scores})
    result = WhiteBoxResult(bound, pure, gdp, eps_acc, exceeds, ceiling, table, info, tr)
    if exceeds:
        warnings.warn(f"!!! {result.flag.upper()} !!!", MiauditWarning, stacklevel=2)
    return result


def _parameter_names(module, can) -> list[str]:
    """``"name[flat index]"`` of each Dirac coordinate; ``"random direction"`` otherwise."""
    if can.kind != "dirac":
        return ["random direction"] * can.m
    named = [(name, p.numel()) for name, p in module.named_parameters() if p.requires_grad]
    bounds = np.cumsum([0] + [size for _, size in named])
    which = np.searchsorted(bounds, can.coordinates, side="right") - 1
    return [f"{named[k][0]}[{c - bounds[k]}]" for k, c in zip(which, can.coordinates,
                                                              strict=True)]


def _accuracy(module, X: np.ndarray, y: np.ndarray, device: str) -> float:
    from miaudit.audits.sweep import _logits

    return float(np.mean(_logits(module, X, device).argmax(axis=1) == y))
