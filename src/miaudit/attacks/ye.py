"""Attack-P and Attack-R (Ye et al., "Enhanced Membership Inference Attacks against Machine
Learning Models", CCS 2022).

Attack-P compares the target's loss on a record with its losses on population data
(records set aside from the audit that the target never trained on); Attack-R with the
losses of reference models trained without the record (OUT). The module is named for the
paper rather than ``population``: the two attacks are its family, and only Attack-P reads
population data (Attack-R reads reference models).

Every score is "higher = more likely a member". No attack here reads the audited records'
membership. Knowledge (``Attack.knowledge``): Attack-P ``population``; Attack-R
``references``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_ndtr, logsumexp

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.attacks.reference_signals import (
    POPULATION,
    REFERENCES,
    gaussian_fit,
    observed_phi,
    unscored_records,
)
from miaudit.errors import ConfigError

#: Silverman's rule of thumb for a Gaussian kernel: bandwidth = (4/3)^(1/5) sd m^(-1/5).
_SILVERMAN = (4.0 / 3.0) ** 0.2


def attack_r(inputs: AttackInput) -> np.ndarray:
    """Attack-R (Ye et al., CCS 2022): the percentile of the target's loss on the record
    among the OUT reference models' losses on it, as a continuous score.

    Ye et al. threshold each record at a percentile of its OUT references' losses; the
    plain count ("fraction of OUT references whose loss is at least the target's") takes
    only ``K_out + 1`` values, so every record whose target loss lies below all its
    references' ties at the top, exactly where the TPR at low FPR is read. Here the
    empirical distribution of the references' losses is smoothed with a Gaussian kernel,
    on the logit scale ``phi = log(p_y / (1 - p_y))`` (a decreasing function of the loss,
    on which per-record distributions are close to Gaussian, Carlini et al. 2022):

        S(x) = mean_k Phi((phi_target(x) - phi_k(x)) / h),

    the smoothed fraction of OUT references with a loss at least the target's, with one
    bandwidth ``h = (4/3) ** (1/5) * s * m ** (-1/5)`` per record (Silverman's rule,
    ``(4/3) ** (1/5) = 1.06``; ``s`` the
    within-record spread of the OUT references' ``phi`` pooled over records, ``m`` the
    record's OUT references). As ``h -> 0`` it is the plain fraction (ties counted half);
    beyond the references it keeps decreasing, so records are ordered by how far the
    target's loss sits beyond theirs. Linear interpolation of the empirical CDF (Ye et
    al.'s implementation) is continuous only between the references' losses and still
    saturates beyond them; a single fitted Gaussian instead would be offline LiRA.

    Returns
    -------
    scores : ndarray (N,)
        ``log(S / (1 - S))``, the log-odds of the smoothed percentile (``expit`` gives
        ``S`` back), computed from both tails in log space so that records far beyond every
        reference stay apart in floating point. Higher = member. NaN (with a
        :class:`~miaudit.errors.MiauditWarning`) for a record without an OUT reference.

    Knowledge: ``references``.
    """
    refs = inputs.references
    missing = unscored_records("attack-r", refs, {"out"})
    out = ~refs.membership
    _, spread, n_out = gaussian_fit(refs.phi, out, per_example=False)
    h = _SILVERMAN * spread * np.maximum(n_out, 1) ** -0.2
    d = (observed_phi(inputs.target)[None, :] - refs.phi) / h[None, :]
    at_least = logsumexp(np.where(out, log_ndtr(d), -np.inf), axis=0)
    below = logsumexp(np.where(out, log_ndtr(-d), -np.inf), axis=0)
    with np.errstate(invalid="ignore"):
        return np.where(missing, np.nan, at_least - below)


def attack_p(inputs: AttackInput) -> np.ndarray:
    """Attack-P (Ye et al., CCS 2022): fraction of population records whose target loss is
    at least the record's loss (``inputs.population.target.loss``). A non-decreasing
    function of the loss, so its ROC is the LOSS attack's up to ties between population
    steps; the score reads as a calibrated p-value. Higher = member.

    Knowledge: ``population`` (records set aside from the audit that the target never
    trained on); without population data it raises :class:`~miaudit.errors.ConfigError`."""
    if inputs.population is None:
        raise ConfigError("attack-p compares each record's loss with the target's losses on "
                          "population data (records set aside from the audit); this audit "
                          "has none. Set population records aside, or leave attack-p out.")
    pop = np.sort(inputs.population.target.loss)
    below = np.searchsorted(pop, inputs.target.loss, side="left")
    return (len(pop) - below) / len(pop)


register_attack(Attack(
    # knowledge: the target's losses on population data only
    "attack-p", attack_p, frozenset({"loss"}),
    "fraction of population records with a higher target loss", "Ye et al., CCS 2022",
    knowledge=POPULATION,
))
register_attack(Attack(
    # knowledge: reference models (their OUT losses on each record)
    "attack-r", attack_r, frozenset({"loss"}),
    "smoothed percentile of the target's loss among OUT references' losses",
    "Ye et al., CCS 2022", min_references=1, reference_sides=frozenset({"out"}),
    knowledge=REFERENCES,
))
