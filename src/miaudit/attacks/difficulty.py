"""Difficulty calibration (Watson et al., "On the Importance of Difficulty Calibration in
Membership Inference Attacks", ICLR 2022).

A record's loss says little on its own: hard records have a high loss whether or not the
model trained on them. Watson et al. subtract what the loss would be on a model that did
not train on the record, estimated by reference models trained without it (OUT):

    score(x) = mean_k loss_k(x) - loss_target(x),   k over the OUT references of x,

the calibrated LOSS attack. Higher = member. The audited records' membership is never
read. Knowledge (``Attack.knowledge``): ``references``.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.attacks.reference_signals import REFERENCES, gaussian_fit, unscored_records


def calibrated_loss(inputs: AttackInput) -> np.ndarray:
    """Calibrated LOSS (Watson et al., ICLR 2022): the OUT references' mean loss on the
    record minus the target's loss on it; with augmented queries, the mean over the
    variants. Higher = member.

    Returns
    -------
    scores : ndarray (N,)
        NaN (with a :class:`~miaudit.errors.MiauditWarning`) for a record without an OUT
        reference.

    Knowledge: ``references``.
    """
    missing = unscored_records("calibrated-loss", inputs.references, {"out"})
    parts = [gaussian_fit(refs.loss, ~refs.membership, per_example=False)[0] - target.loss
             for target, refs in inputs.query_pairs()]
    return np.where(missing, np.nan, np.mean(parts, axis=0))


register_attack(Attack(
    # knowledge: reference models trained without each record (their losses on it)
    "calibrated-loss", calibrated_loss, frozenset({"loss"}),
    "OUT references' mean loss minus the target's loss", "Watson et al., ICLR 2022",
    min_references=1, reference_sides=frozenset({"out"}), knowledge=REFERENCES,
))
