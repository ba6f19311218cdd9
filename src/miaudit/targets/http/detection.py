"""What an endpoint releases, told from its answers on a few records:
:func:`detect_exposure`."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

import numpy as np

from miaudit.errors import (
    ConfigError,
    DataError,
    OutputError,
)
from miaudit.targets.http.client import HTTPTarget
from miaudit.targets.http.wire import FORMS, check_rows, to_matrix

_MAX_ROUNDED_DECIMALS = 6


class DetectedExposure(NamedTuple):
    """What an endpoint releases: a miaudit exposure setting and why.

    Attributes
    ----------
    setting : str
        ``probabilities``, ``logits``, ``top-k:K``, ``rounded:D`` or ``label``
        (:func:`~miaudit.signals.parse_exposure` reads it).
    explanation : str
        One line saying what in the answers gave it away.
    """

    setting: str
    explanation: str


def detect_exposure(target: object, X_probe: np.ndarray) -> DetectedExposure:
    """Tell from the answers on ``X_probe`` what a target releases.

    Parameters
    ----------
    target : HTTPTarget or any Target
        An :class:`HTTPTarget` is judged from its raw answers (top-k lists, labels,
        decimals as sent); any other target from its ``outputs``.
    X_probe : ndarray (N, D)
        A few records (say 50 to 200; these are real queries, counted and cached).

    Returns
    -------
    DetectedExposure
        ``(setting, explanation)``: a full probability vector is ``probabilities``; rows
        with values outside [0, 1] or not summing to 1 are ``logits``; K (label,
        probability) pairs are ``top-k:K``; probabilities that are all multiples of
        10^-D (D <= 6) are ``rounded:D``; one-hot or label answers are ``label``.

    Examples
    --------
    >>> from miaudit.targets import CallableTarget
    >>> detect_exposure(CallableTarget(lambda X: np.tile([0.3, 0.7], (len(X), 1))),
    ...                 np.zeros((4, 2))).setting
    'rounded:1'
    """
    X_probe = check_rows(X_probe)
    if len(X_probe) == 0:
        raise DataError("detect_exposure needs at least one probe record.")
    if isinstance(target, HTTPTarget):
        answers = target._answers(X_probe, None)
        code = {a[0] for a in answers}
        if len(code) > 1 and code != {"v", "p"}:
            raise OutputError(f"The endpoint {target.endpoint}'s answers mix forms "
                              f"({sorted(FORMS[c] for c in code)}).")
        code = code.pop()
        where = "the endpoint"
        if code == "l":
            return DetectedExposure("label", f"{where} answers with a class label only.")
        if code == "k":
            ks = {len(a[1]) for a in answers}
            k = max(ks)
            probs = np.array([p for a in answers for _, p in a[1]])
            c = target.n_classes
            if c is not None and k >= c:
                M, _ = to_matrix(answers, target.n_classes, target.classes)
                return _judge_vectors(M, where, f"all {c} (label, probability) pairs")
            d = _decimals(probs)
            rounded = f", probabilities rounded to {d} decimals" if d is not None else ""
            varies = f" (at most; {min(ks)} to {k})" if len(ks) > 1 else ""
            return DetectedExposure(
                f"top-k:{k}", f"{where} returns {k} (label, probability) pair(s) per "
                f"record{varies}{rounded}.")
        M = np.array([a[1] for a in answers], dtype=np.float64)
        if code == "z":
            return DetectedExposure("logits", f"{where} returns logits ({M.shape[1]} values "
                                              "per record, under the key 'logits').")
        return _judge_vectors(M, where, f"{M.shape[1]} values per record")
    if not hasattr(target, "outputs"):
        raise ConfigError(f"Cannot probe an object of type {type(target).__name__}: pass an "
                          "HTTPTarget or an object with outputs(X).")
    out = target.outputs(X_probe)  # type: ignore[attr-defined]
    if out.kind == "logits":
        return DetectedExposure("logits", f"the model returns logits ({out.n_classes} "
                                          "values per record).")
    return _judge_vectors(out.values, "the model", f"{out.n_classes} values per record")


def _judge_vectors(M: np.ndarray, where: str, what: str) -> DetectedExposure:
    sums = M.sum(axis=1)
    in_unit = M.min() >= -1e-9 and M.max() <= 1 + 1e-9
    if not in_unit:
        return DetectedExposure("logits", f"{where} returns {what} with values outside "
                                          f"[0, 1] (from {M.min():.3g} to {M.max():.3g}).")
    onehot = np.isin(M, (0.0, 1.0)).all() and np.allclose(sums, 1.0)
    if onehot:
        return DetectedExposure("label", f"{where} returns one-hot vectors: the label only.")
    d = _decimals(M.ravel())
    if d is not None:
        return DetectedExposure(f"rounded:{d}", f"{where} returns {what}, every one a "
                                                f"multiple of 10^-{d} (rounded to {d} "
                                                "decimals).")
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > 1e-4:
        return DetectedExposure("logits", f"{where} returns {what} that do not sum to 1 "
                                          f"(record {worst} sums to {sums[worst]:.6g}): "
                                          "scores, not probabilities.")
    return DetectedExposure("probabilities", f"{where} returns {what} in [0, 1] summing to "
                                             "1, at full precision: the probability vector.")


def _decimals(values: np.ndarray) -> int | None:
    """The fewest decimals D <= 6 that write every value exactly (shortest round-trip
    text), or None when some value needs more (full precision)."""
    most = 0
    for v in np.unique(np.asarray(values, dtype=np.float64)):
        exp = Decimal(repr(float(v))).normalize().as_tuple().exponent
        d = max(0, -int(exp))  # type: ignore[arg-type]
        if d > _MAX_ROUNDED_DECIMALS:
            return None
        most = max(most, d)
    return most
