"""LiRA, the likelihood-ratio attack (Carlini et al., "Membership Inference Attacks From
First Principles", S&P 2022), online and offline.

Each record's logit-scaled confidence ``phi``
(:func:`~miaudit.attacks.reference_signals.observed_phi`) under the reference models
trained with it (IN) and without it (OUT) is fitted with a Gaussian
(:func:`~miaudit.attacks.reference_signals.gaussian_fit`), with a global (pooled) variance
or a per-example one; with augmented queries the score is the mean over the variants.
Online LiRA is the log-ratio of the IN and OUT densities at the target's ``phi``
(:func:`gaussian_log_ratio`, which text LiRA, :func:`miaudit.attacks.lm.lira_text`, also
uses); offline LiRA a one-sided test against the OUT Gaussian, as the paper's text states
it. The authors' released code scores offline LiRA by minus the OUT log density instead,
a two-sided test (a record far *below* the OUT mean also scores high); on Location30 it
is weaker at every budget from 2 to 64 references (TPR at 0.1% FPR 9.1% against 16.5%
with 16, global variance; ``python benchmarks/paper_shapes.py``, "Offline LiRA's two
forms"), so it is not offered.

Every score is "higher = more likely a member". The reference models are the attacker's
own: it knows which records each was trained on (``References.membership``); the audited
records' membership is never read. Knowledge (``Attack.knowledge``): ``references``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr

from miaudit.attacks.base import Attack, AttackInput, References, register_attack
from miaudit.attacks.reference_signals import (
    REFERENCES,
    gaussian_fit,
    observed_phi,
    unscored_records,
)

#: Below this many reference models LiRA defaults to a global variance (Carlini et al.).
GLOBAL_VARIANCE_BELOW = 64


def _variance_mode(variance: str, n_refs: int) -> bool:
    """Whether LiRA fits a per-example variance (else a global one)."""
    if variance == "auto":
        return n_refs >= GLOBAL_VARIANCE_BELOW
    return variance == "per-example"


def gaussian_log_ratio(phi: np.ndarray, mu_in: np.ndarray, s_in: np.ndarray,
                       mu_out: np.ndarray, s_out: np.ndarray) -> np.ndarray:
    """``log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)``: LiRA's online test
    (Carlini et al., S&P 2022), for classifiers and language models alike."""
    return (-0.5 * ((phi - mu_in) / s_in) ** 2 - np.log(s_in)
            + 0.5 * ((phi - mu_out) / s_out) ** 2 + np.log(s_out))


def _lira(phi: np.ndarray, refs: References, per_example: bool, online: bool) -> np.ndarray:
    """LiRA's score of one query (the record or one augmented variant)."""
    mu_out, s_out, _ = gaussian_fit(refs.phi, ~refs.membership, per_example)
    if not online:
        return log_ndtr((phi - mu_out) / s_out)
    mu_in, s_in, _ = gaussian_fit(refs.phi, refs.membership, per_example)
    return gaussian_log_ratio(phi, mu_in, s_in, mu_out, s_out)


def lira_online(inputs: AttackInput, *, variance: str = "auto") -> np.ndarray:
    """Online LiRA (Carlini et al., S&P 2022): ``log N(phi; mu_in, s_in^2) - log N(phi;
    mu_out, s_out^2)``, Gaussians fitted per record on references trained with (IN) and
    without (OUT) it; with augmented queries, the mean of the scores over the variants
    (one Gaussian per variant). ``variance``: ``"global"`` (pooled; default below 64
    references), ``"per-example"`` or ``"auto"``. Higher = member.

    Knowledge: ``references``. A record without an IN or without an OUT reference is
    scored NaN, with a :class:`~miaudit.errors.MiauditWarning` naming how many."""
    missing = unscored_records("lira-online", inputs.references, {"in", "out"})
    per_example = _variance_mode(variance, inputs.references.n_models)
    score = np.mean([_lira(observed_phi(t), refs, per_example, online=True)
                     for t, refs in inputs.query_pairs()], axis=0)
    return np.where(missing, np.nan, score)


def lira_offline(inputs: AttackInput, *, variance: str = "auto") -> np.ndarray:
    """Offline LiRA: ``log Phi((phi - mu_out) / s_out)``, a one-sided test against the
    references trained without the record (mean over augmented variants). Higher = member.

    Knowledge: ``references``. A record without an OUT reference is scored NaN, with a
    :class:`~miaudit.errors.MiauditWarning` naming how many."""
    missing = unscored_records("lira-offline", inputs.references, {"out"})
    per_example = _variance_mode(variance, inputs.references.n_models)
    score = np.mean([_lira(observed_phi(t), refs, per_example, online=False)
                     for t, refs in inputs.query_pairs()], axis=0)
    return np.where(missing, np.nan, score)


register_attack(Attack(
    # knowledge: reference models trained with and without each record
    "lira-online", lira_online, frozenset({"loss"}),
    "likelihood ratio of IN vs OUT Gaussians of logit-scaled confidence",
    "Carlini et al., S&P 2022", min_references=2, reference_sides=frozenset({"in", "out"}),
    knowledge=REFERENCES,
))
register_attack(Attack(
    # knowledge: reference models trained without each record
    "lira-offline", lira_offline, frozenset({"loss"}),
    "one-sided test against OUT Gaussians of logit-scaled confidence",
    "Carlini et al., S&P 2022", min_references=1, reference_sides=frozenset({"out"}),
    knowledge=REFERENCES,
))
