"""What the reference-model attacks read off the target and the references.

Shared by LiRA (:mod:`miaudit.attacks.lira`), Attack-R (:mod:`miaudit.attacks.ye`), RMIA
(:mod:`miaudit.attacks.rmia`) and text LiRA (:func:`miaudit.attacks.lm.lira_text`):

* :func:`observed_phi`, the logit-scaled confidence ``phi = log(p_y / (1 - p_y))`` of an
  observation, on which per-record distributions over models are close to Gaussian
  (Carlini et al., "Membership Inference Attacks From First Principles", S&P 2022);
* :func:`gaussian_fit`, the one per-record Gaussian fit of the references' signals (mean,
  and a per-record or pooled standard deviation), used by LiRA for its likelihood ratio,
  by text LiRA, and by Attack-R for its kernel bandwidth;
* :func:`unscored_records`, the records an attack cannot score for want of a reference
  model trained with (IN) or without (OUT) them;
* the knowledge sets the reference attacks declare (``Attack.knowledge``).

No attack is defined here and nothing is registered, so importing this module leaves the
attack registry as it is. The attacks built on it score "higher = more likely a member".
"""

from __future__ import annotations

import warnings

import numpy as np

from miaudit.attacks.base import References
from miaudit.errors import ConfigError, MiauditWarning
from miaudit.signals.exposure import PHI_MAX, Observation
from miaudit.signals.transforms import (
    logit_scaled_confidence,
    logit_scaled_confidence_from_loss,
)

_MIN_STD = 1e-6

#: Knowledge of an attack that reads reference models (``Attack.knowledge``).
REFERENCES = frozenset({"references"})
#: Knowledge of an attack that reads population data (``Attack.knowledge``).
POPULATION = frozenset({"population"})


def observed_phi(t: Observation) -> np.ndarray:
    """Logit-scaled confidence of an observation: as :func:`~miaudit.signals.exposure.observe`
    computed it (by the references' rule); for a hand-built observation from logits when
    given, else from the loss (a loss of exactly 0 maps to :data:`PHI_MAX`)."""
    if t.phi is not None:
        return t.phi
    if t.logits is not None:
        return logit_scaled_confidence(t.logits, t.labels)
    return np.minimum(logit_scaled_confidence_from_loss(t.loss), PHI_MAX)


def unscored_records(attack: str, refs: References,
                     sides: frozenset[str] | set[str]) -> np.ndarray:
    """Records without a reference on one of ``sides`` (``in``: trained with the record,
    ``out``: without), which ``attack`` cannot score: warns naming how many, and returns
    the mask. The audit refuses such designs; this is for direct callers."""
    m = refs.membership
    missing = np.zeros(m.shape[1], dtype=bool)
    if "in" in sides:
        missing |= ~m.any(axis=0)
    if "out" in sides:
        missing |= m.all(axis=0)
    n = int(missing.sum())
    if n:
        what = " and ".join(w for s, w in (("in", "one trained with it (IN)"),
                                           ("out", "one trained without it (OUT)"))
                            if s in sides)
        warnings.warn(
            f"{attack}: {n} of {len(missing)} record(s) have no reference model of the kind "
            f"it needs ({what}); their score is NaN. Train more references, or in "
            "complementary pairs, so that every record has them.",
            MiauditWarning, stacklevel=3,
        )
    return missing


def require_in_and_out(attack: str, refs: References) -> None:
    """Refuse references (their ``tuning`` view) that saw none or all of their records:
    an attack that learns from IN and OUT reference rows has nothing to learn from."""
    if refs.membership.all() or not refs.membership.any():
        raise ConfigError(
            f"The attack {attack!r} learns from reference outputs on records they were and "
            "were not trained on; these references saw none (or all) of their records. Use "
            "--reference-mode online.")


def gaussian_fit(values: np.ndarray, mask: np.ndarray,
                 per_example: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean per record and standard deviation (per record, or pooled within records)
    of ``values[k, i]`` over the references ``k`` with ``mask[k, i]``, and the number of
    those references per record: ``(mean, std, n)``, each of shape (N,).

    The global (pooled) variance is the within-record variance pooled over records; with a
    single reference per record it falls back to the spread across records, which keeps
    the ranking of the offline score (it depends on ``phi - mu_out`` only). A per-example
    standard deviation needs two references; records with fewer use the pooled one.
    """
    n = mask.sum(axis=0)
    safe = np.maximum(n, 1)
    mean = np.where(mask, values, 0.0).sum(axis=0) / safe
    sq = np.where(mask, (values - mean) ** 2, 0.0).sum(axis=0)
    dof = np.maximum(n - 1, 0).sum()
    if dof > 0:
        pooled = np.sqrt(sq.sum() / dof)
    else:  # one reference per record: only the spread across records is left
        pooled = np.std(values[mask]) if mask.any() else 1.0
    std = np.full(values.shape[1], pooled)
    if per_example:  # records with fewer than 2 references keep the pooled value
        std = np.where(n >= 2, np.sqrt(sq / np.maximum(n - 1, 1)), std)
    return mean, np.maximum(std, _MIN_STD), n
