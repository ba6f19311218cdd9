"""Exposure ("release") settings: what an attacker observes of the model's outputs.

An exposure turns the model's raw outputs into an :class:`Observation`, the attacker's
view. Each field of the observation is either present or ``None``; attacks declare the
fields they need, so an attack that needs more than the exposure releases is refused.

====================  =====================================================================
setting               what the attacker sees
====================  =====================================================================
``logits``            the raw logits (and everything derived from them)
``probabilities``     the full probability vector
``top-k:K``           the K largest probabilities and their classes
``rounded:D``         the probability vector rounded to D decimals
``label``             the predicted label only
``loss``              the loss on the record's true label only
====================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import ExposureError
from miaudit.models.outputs import ModelOutputs
from miaudit.signals.transforms import true_class_loss

EXPOSURE_KINDS: dict[str, str] = {
    "logits": "raw logits",
    "probabilities": "full probability vector",
    "top-k": "the K largest probabilities and their classes (top-k:K)",
    "rounded": "probability vector rounded to D decimals (rounded:D)",
    "label": "predicted label only",
    "loss": "loss on the true label only",
}

#: Observation fields each exposure kind releases.
RELEASED_FIELDS: dict[str, frozenset[str]] = {
    "logits": frozenset({"logits", "probs", "loss", "predicted"}),
    "probabilities": frozenset({"probs", "loss", "predicted"}),
    "rounded": frozenset({"probs", "loss", "predicted"}),
    "top-k": frozenset({"loss", "predicted"}),
    "label": frozenset({"predicted"}),
    "loss": frozenset({"loss"}),
}

FIELD_DESCRIPTIONS: dict[str, str] = {
    "logits": "the raw logits",
    "probs": "the full probability vector",
    "loss": "the true-class probability or loss",
    "predicted": "the predicted label",
}


@dataclass(frozen=True)
class Exposure:
    """A parsed exposure setting such as ``top-k:3`` or ``rounded:2``.

    Build it with :func:`parse_exposure`.
    """

    kind: str
    param: int | None = None

    def __str__(self) -> str:
        return self.kind if self.param is None else f"{self.kind}:{self.param}"

    @property
    def fields(self) -> frozenset[str]:
        """The observation fields this exposure releases."""
        return RELEASED_FIELDS[self.kind]


def parse_exposure(setting: str | Exposure) -> Exposure:
    """Parse ``logits``, ``probabilities``, ``top-k:K``, ``rounded:D``, ``label`` or ``loss``.

    >>> parse_exposure("top-k:3")
    Exposure(kind='top-k', param=3)
    """
    if isinstance(setting, Exposure):
        return setting
    text = str(setting).strip().lower()
    aliases = {"probs": "probabilities", "proba": "probabilities", "labels": "label"}
    kind, sep, arg = text.partition(":")
    kind = aliases.get(kind, kind)
    if kind not in EXPOSURE_KINDS:
        raise ExposureError(
            f"The exposure setting {setting!r} is unknown; use one of: "
            "logits, probabilities, top-k:K, rounded:D, label, loss."
        )
    if kind in ("top-k", "rounded"):
        what = "k" if kind == "top-k" else "d (decimals)"
        if not sep or not arg:
            raise ExposureError(
                f"The exposure setting {setting!r} needs a number: write {kind}:N "
                f"(for example {kind}:{3 if kind == 'top-k' else 2})."
            )
        try:
            value = int(arg)
        except ValueError:
            raise ExposureError(
                f"The exposure setting {setting!r} is invalid: {what} must be an integer, "
                f"got {arg!r}."
            ) from None
        minimum = 1 if kind == "top-k" else 0
        if value < minimum:
            raise ExposureError(
                f"The exposure setting {setting!r} is invalid: {what} must be >= {minimum}, "
                f"got {value}."
            )
        return Exposure(kind, value)
    if sep:
        raise ExposureError(f"The exposure setting {setting!r} takes no parameter; write {kind}.")
    return Exposure(kind)


@dataclass(frozen=True)
class Observation:
    """What an attacker observes of one model on ``N`` records.

    Attributes are ``None`` when the exposure does not release them.

    Attributes
    ----------
    labels : ndarray (N,) int
        True labels (the attacker knows the record it asks about).
    logits : ndarray (N, C) or None
    probs : ndarray (N, C) or None
        Probability vector as released (rounded for ``rounded:D``).
    loss : ndarray (N,) or None
        ``-log p_y`` as the attacker can compute it from what is released.
    predicted : ndarray (N,) int or None
        Predicted label.
    """

    labels: np.ndarray
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    loss: np.ndarray | None = None
    predicted: np.ndarray | None = None

    @property
    def fields(self) -> frozenset[str]:
        names = ("logits", "probs", "loss", "predicted")
        return frozenset(n for n in names if getattr(self, n) is not None)


def observe(outputs: ModelOutputs, labels: np.ndarray, exposure: Exposure | str) -> Observation:
    """Apply an exposure setting to raw model outputs.

    For ``top-k:K``, the loss of a record whose true class is not among the K released
    classes uses ``p_y ~= min(p_K, (1 - sum of top-K) / (C - K))``: the leftover mass
    spread evenly, capped by the smallest released probability. For ``rounded:D``, a
    true-class probability that rounds to 0 is taken as ``0.25 * 10**-D`` (the middle of
    the interval that rounds to 0).
    """
    exposure = parse_exposure(exposure)
    labels = np.asarray(labels)
    log_probs = outputs.log_probs()
    probs = np.exp(log_probs)
    predicted = np.argmax(log_probs, axis=1)
    kind = exposure.kind
    if kind == "logits":
        if outputs.kind != "logits":
            raise ExposureError(
                "The exposure 'logits' needs logits, but the model returns probabilities; "
                "use --exposure probabilities."
            )
        return Observation(
            labels,
            logits=outputs.values,
            probs=probs,
            loss=true_class_loss(log_probs, labels),
            predicted=predicted,
        )
    if kind == "probabilities":
        return Observation(
            labels, probs=probs, loss=true_class_loss(log_probs, labels), predicted=predicted
        )
    if kind == "rounded":
        d = int(exposure.param or 0)
        rounded = probs if d > 300 else np.round(probs, d)
        floor = 0.25 * 10.0 ** (-d)
        p_y = np.maximum(rounded[np.arange(len(labels)), labels], floor)
        return Observation(
            labels, probs=rounded, loss=-np.log(p_y), predicted=np.argmax(rounded, axis=1)
        )
    if kind == "top-k":
        k = min(int(exposure.param or 1), outputs.n_classes)
        return Observation(labels, loss=_top_k_loss(probs, labels, k), predicted=predicted)
    if kind == "label":
        return Observation(labels, predicted=predicted)
    if kind == "loss":
        return Observation(labels, loss=true_class_loss(log_probs, labels))
    raise AssertionError(f"unhandled exposure {kind}")  # parse_exposure rejects others


def _top_k_loss(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    n, c = probs.shape
    rows = np.arange(n)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top = probs[rows[:, None], order]
    in_top = (order == labels[:, None]).any(axis=1)
    p_y = probs[rows, labels]
    if k < c:
        leftover = np.clip(1.0 - top.sum(axis=1), 0.0, None) / (c - k)
        imputed = np.minimum(top[:, -1], leftover)
        p_y = np.where(in_top, p_y, imputed)
    return -np.log(np.maximum(p_y, 1e-300))
