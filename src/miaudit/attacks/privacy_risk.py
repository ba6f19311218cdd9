"""The privacy risk score (Song & Mittal, "Systematic Evaluation of Privacy Risks of
Machine Learning Models", USENIX Security 2021, Sec. 6).

A record's risk is the posterior probability that it is a member given what the model
releases on it, with a prior of 1/2:

    risk(x) = p_in(s(x) | y) / (p_in(s(x) | y) + p_out(s(x) | y)),

where ``s`` is the modified-entropy signal (minus Song & Mittal's Mentr, higher for
members) and ``p_in``, ``p_out`` its distributions within the record's class on records a
reference model was and was not trained on. The distributions are histograms of the
references' signals on their own training pool (``References.tuning``) with equal-count
bins per class, add-one smoothed; the risk is interpolated linearly (in log-odds) between
bin centres so that records in one bin are still ordered. Unlike a rank percentile it
reads as a probability: 0.9 means nine in ten records with that output were members of
such a model. Higher = member. Knowledge (``Attack.knowledge``): ``references``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from scipy.stats import rankdata

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.attacks.reference_signals import REFERENCES, require_in_and_out
from miaudit.signals.transforms import modified_entropy

#: Histogram bins per class: about sqrt(rows) / 2, within these bounds.
MIN_BINS, MAX_BINS = 4, 50
#: Records of equal risk (beyond the outermost bin centres the curve is flat) are ordered
#: by their signal, within this much of their risk: without it 80-210 Location30 records
#: tie at the top and the TPR at 0.1% FPR reads 0.0% (0.8-1.8% with it).
_TIE_BREAK = 1e-9


def _log_odds_curve(signal: np.ndarray, inside: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and the smoothed log-odds ``log p_in / p_out`` at each, from equal-count
    bins of ``signal`` (IN and OUT rows pooled)."""
    bins = int(np.clip(round(np.sqrt(len(signal)) / 2), MIN_BINS, MAX_BINS))
    edges = np.unique(np.quantile(signal, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:  # one value only: nothing to tell apart
        return np.array([edges[0]]), np.array([0.0])
    which = np.clip(np.searchsorted(edges, signal, side="right") - 1, 0, len(edges) - 2)
    n = len(edges) - 1
    count_in = np.bincount(which[inside], minlength=n) + 1.0
    count_out = np.bincount(which[~inside], minlength=n) + 1.0
    log_odds = np.log(count_in / count_in.sum()) - np.log(count_out / count_out.sum())
    return (edges[:-1] + edges[1:]) / 2, log_odds


def privacy_risk(inputs: AttackInput) -> np.ndarray:
    """Privacy risk score (Song & Mittal, USENIX Security 2021): the posterior probability
    of membership given the record's modified-entropy signal, from per-class histograms of
    the reference models' signals on records they were (IN) and were not (OUT) trained on;
    prior 1/2. A class without both IN and OUT rows uses the histograms of all classes.

    Returns
    -------
    scores : ndarray (N,)
        In (0, 1), records of equal risk ordered by their signal (within 1e-9). Higher =
        member.

    Knowledge: ``references``.
    """
    refs = inputs.references.tuning
    require_in_and_out("privacy-risk", refs)
    signal = -np.concatenate([modified_entropy(softmax(z, axis=1), refs.labels)
                              for z in refs.logits])
    inside = refs.membership.reshape(-1)
    row_labels = np.tile(refs.labels, refs.n_models)
    target = -modified_entropy(inputs.target.probs, inputs.target.labels)
    labels = inputs.target.labels
    overall = _log_odds_curve(signal, inside)
    out = np.empty(len(labels))
    for c in np.unique(labels):
        rows = row_labels == c
        both = inside[rows].any() and not inside[rows].all()
        centres, log_odds = _log_odds_curve(signal[rows], inside[rows]) if both else overall
        mask = labels == c
        out[mask] = np.interp(target[mask], centres, log_odds)
    return expit(out) + _TIE_BREAK * rankdata(target) / len(target)


register_attack(Attack(
    # knowledge: reference models with their membership (IN and OUT signal histograms)
    "privacy-risk", privacy_risk, frozenset({"probs"}),
    "posterior P(member) from IN/OUT reference histograms per class",
    "Song & Mittal, USENIX Security 2021", min_references=1, knowledge=REFERENCES,
))
