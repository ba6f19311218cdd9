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
``temperature:T``     the full probability vector after temperature scaling,
                      ``softmax(log p / T)`` (T > 0; keeps the label)
``noise:SIGMA``       the full probability vector plus Gaussian noise N(0, SIGMA^2), clipped
                      at 0 and renormalised (SIGMA >= 0; fresh noise per record; may change
                      the label)
``memguard:EPS``      the full probability vector flattened toward uniform by at most EPS in
                      L1 (0 <= EPS <= 2; keeps the label; simplified MemGuard)
====================  =====================================================================

The last three are output defences (:mod:`miaudit.signals.defences`): they release the same
fields as ``probabilities``, computed from the defended vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from miaudit.errors import ExposureError
from miaudit.signals.defences import (
    DEFENCES,
    gaussian_noise,
    memguard,
    temperature_scale,
)
from miaudit.signals.transforms import (
    logit_scaled_confidence,
    logit_scaled_confidence_from_loss,
    true_class_loss,
)
from miaudit.targets.outputs import ModelOutputs, check_outputs

#: Cap of a phi computed from a loss (``loss`` and ``top-k`` exposures), i.e. ``1 - p_y``
#: down to 4e-18: below about 1e-16 a float64 log-softmax returns a loss of exactly 0, so a
#: loss carries no finer information. Capping (rather than sending a loss of 0 to a far
#: value) keeps the order and keeps saturated records from inflating LiRA's variances;
#: the references are released the same way (:func:`released_logits`).
PHI_MAX = 40.0
_LOG_FLOOR = float(np.log(1e-300))

EXPOSURE_KINDS: dict[str, str] = {
    "logits": "raw logits",
    "probabilities": "full probability vector",
    "top-k": "the K largest probabilities and their classes (top-k:K)",
    "rounded": "probability vector rounded to D decimals (rounded:D)",
    "label": "predicted label only",
    "loss": "loss on the true label only",
    "temperature": "full probability vector after temperature scaling (temperature:T)",
    "noise": "full probability vector plus Gaussian noise (noise:SIGMA)",
    "memguard": "full probability vector flattened within an L1 budget (memguard:EPS)",
}

#: Observation fields each exposure kind releases.
RELEASED_FIELDS: dict[str, frozenset[str]] = {
    "logits": frozenset({"logits", "probs", "loss", "predicted"}),
    "probabilities": frozenset({"probs", "loss", "predicted"}),
    "rounded": frozenset({"probs", "loss", "predicted"}),
    "top-k": frozenset({"loss", "predicted"}),
    "label": frozenset({"predicted"}),
    "loss": frozenset({"loss"}),
    **{name: frozenset({"probs", "loss", "predicted"}) for name in DEFENCES},
}

FIELD_DESCRIPTIONS: dict[str, str] = {
    "logits": "the raw logits",
    "probs": "the full probability vector",
    "loss": "the true-class probability or loss",
    "predicted": "the predicted label",
}


_SETTINGS = "logits, probabilities, top-k:K, rounded:D, label, loss, " + ", ".join(
    f"{name}:{d.symbol.upper()}" for name, d in DEFENCES.items()
)


def _format_param(value: float) -> str:
    """Shortest text that parses back to ``value``, without a trailing ``.0`` (2, 0.01)."""
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Exposure:
    """A parsed exposure setting such as ``top-k:3``, ``rounded:2`` or ``temperature:2``.

    Build it with :func:`parse_exposure`; ``parse_exposure(str(e)) == e``.

    Attributes
    ----------
    kind : str
        One of :data:`EXPOSURE_KINDS`.
    param : int, float or None
        K or D (int) for ``top-k`` and ``rounded``, T, SIGMA or EPS (float) for the
        defences, else None.
    """

    kind: str
    param: int | float | None = None

    def __str__(self) -> str:
        return self.kind if self.param is None else f"{self.kind}:{_format_param(self.param)}"

    @property
    def fields(self) -> frozenset[str]:
        """The observation fields this exposure releases."""
        return RELEASED_FIELDS[self.kind]

    @property
    def is_defence(self) -> bool:
        """Whether this setting releases the probability vector after an output defence."""
        return self.kind in DEFENCES

    @property
    def description(self) -> str:
        """What the attacker sees, in one line of plain words (for reports).

        >>> parse_exposure("temperature:2").description
        'full probability vector after temperature scaling with T = 2'
        """
        value = None if self.param is None else _format_param(self.param)
        texts = {
            "logits": "raw logits",
            "probabilities": "full probability vector",
            "top-k": f"the {value} largest probabilities and their classes",
            "rounded": f"probability vector rounded to {value} decimals",
            "label": "predicted label only",
            "loss": "loss on the true label only",
            "temperature": f"full probability vector after temperature scaling with T = {value}",
            "noise": f"full probability vector with Gaussian noise of sigma = {value} added "
                     "to each entry (clipped at 0, renormalised)",
            "memguard": f"full probability vector flattened toward uniform by at most "
                        f"eps = {value} in L1, keeping the label (simplified MemGuard)",
        }
        return texts[self.kind]


def parse_exposure(setting: str | Exposure) -> Exposure:
    """Parse ``logits``, ``probabilities``, ``top-k:K``, ``rounded:D``, ``label``, ``loss``,
    ``temperature:T``, ``noise:SIGMA`` or ``memguard:EPS``.

    Raises :class:`~miaudit.errors.ExposureError` for an unknown, incomplete or
    out-of-range setting.

    >>> parse_exposure("top-k:3")
    Exposure(kind='top-k', param=3)
    >>> parse_exposure("memguard:0.3")
    Exposure(kind='memguard', param=0.3)
    """
    if isinstance(setting, Exposure):
        return setting
    text = str(setting).strip().lower()
    aliases = {"probs": "probabilities", "proba": "probabilities", "labels": "label"}
    kind, sep, arg = text.partition(":")
    kind = aliases.get(kind, kind)
    if kind not in EXPOSURE_KINDS:
        raise ExposureError(
            f"The exposure setting {setting!r} is unknown; use one of: {_SETTINGS}."
        )
    if kind in DEFENCES:
        return Exposure(kind, _parse_defence_param(setting, kind, arg if sep else ""))
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


def _parse_defence_param(setting: object, kind: str, arg: str) -> float:
    defence = DEFENCES[kind]
    what = defence.symbol
    if not arg:
        raise ExposureError(
            f"The exposure setting {setting!r} needs a number: write {kind}:{what.upper()} "
            f"(for example {kind}:{_format_param(defence.example)})."
        )
    try:
        value = float(arg)
    except ValueError:
        raise ExposureError(
            f"The exposure setting {setting!r} is invalid: {what} must be a number, "
            f"got {arg!r}."
        ) from None
    if not np.isfinite(value):
        raise ExposureError(
            f"The exposure setting {setting!r} is invalid: {what} must be a finite number, "
            f"got {arg!r}."
        )
    value += 0.0  # -0.0 -> 0.0
    low, high = defence.minimum, defence.maximum
    too_low = value <= low if defence.open_minimum else value < low
    if too_low or value > high:
        bound = f"> {_format_param(low)}" if defence.open_minimum else (
            f">= {_format_param(low)}" if high == np.inf
            else f"between {_format_param(low)} and {_format_param(high)}"
        )
        raise ExposureError(
            f"The exposure setting {setting!r} is invalid: {what} must be {bound}, "
            f"got {_format_param(value)}."
        )
    return value


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
        Probability vector as released: after the defence for ``temperature:T``,
        ``noise:SIGMA`` and ``memguard:EPS``; for ``rounded:D`` the attacker's estimate
        from the rounded vector (see :func:`observe`).
    loss : ndarray (N,) or None
        ``-log p_y`` as the attacker can compute it from what is released.
    predicted : ndarray (N,) int or None
        Predicted label.
    phi : ndarray (N,) or None
        LiRA's ``log(p_y / (1 - p_y))`` as computed from what is released, by the same
        rule as the references' (:func:`released_logits`); None for ``label``, and for
        observations built by hand (attacks then derive it from logits or the loss).
    """

    labels: np.ndarray
    logits: np.ndarray | None = None
    probs: np.ndarray | None = None
    loss: np.ndarray | None = None
    predicted: np.ndarray | None = None
    phi: np.ndarray | None = None

    @property
    def fields(self) -> frozenset[str]:
        names = ("logits", "probs", "loss", "predicted")
        return frozenset(n for n in names if getattr(self, n) is not None)


def observe(
    outputs: ModelOutputs,
    labels: np.ndarray,
    exposure: Exposure | str,
    *,
    rng: np.random.Generator | None = None,
) -> Observation:
    """Apply an exposure setting to raw model outputs.

    For a defence (``temperature:T``, ``noise:SIGMA``, ``memguard:EPS``) the defence is
    applied first (:func:`apply_defence`) and the defended vector
    is released as for ``probabilities``; its loss is ``-log p_y`` with ``p_y`` floored at
    ``1e-300``, so it stays finite. ``rng`` is the noise source of ``noise:SIGMA``
    (default ``np.random.default_rng(0)``, so repeated calls release the same noise); the
    other settings ignore it.

    For ``top-k:K``, the loss of a record whose true class is not among the K released
    classes uses ``p_y ~= min(p_K, (1 - sum of top-K) / (C - K))``: the leftover mass
    spread evenly, capped by the smallest released probability. For ``rounded:D``, the
    attacker works on an estimate of the vector: each probability that rounds to 0 is taken
    as ``0.25 * 10**-D`` (the middle of the interval that rounds to 0) and the row is
    renormalised; ``probs``, the loss and ``phi`` come from it.

    ``phi`` is ``log p_y - log(sum of the others)`` on the released vector (entries floored
    at ``1e-300``); under ``loss`` and ``top-k`` it comes from the loss, capped at
    :data:`PHI_MAX`. :func:`released_logits` gives the attacker's references the same
    signals.
    """
    exposure = parse_exposure(exposure)
    labels = np.asarray(labels)
    kind = exposure.kind
    if exposure.is_defence:
        outputs = apply_defence(outputs, exposure, rng=rng)
        kind = "probabilities"
    log_probs = outputs.log_probs()
    probs = np.exp(log_probs)
    predicted = np.argmax(log_probs, axis=1)
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
            phi=logit_scaled_confidence(outputs.values, labels),
        )
    if kind == "probabilities":
        return Observation(
            labels, probs=probs, loss=true_class_loss(log_probs, labels), predicted=predicted,
            phi=logit_scaled_confidence(np.maximum(log_probs, _LOG_FLOOR), labels),
        )
    if kind == "rounded":
        rounded, floor = _rounded(probs, exposure)
        # the attacker's estimate of the vector: a 0 stands for [0, 0.5 * 10**-D), taken at
        # its middle, and the row renormalised (rounded rows need not sum to 1)
        estimate = np.maximum(rounded, floor)
        estimate /= estimate.sum(axis=1, keepdims=True)
        log_estimate = np.log(estimate)
        return Observation(
            labels, probs=estimate, loss=-log_estimate[np.arange(len(labels)), labels],
            predicted=np.argmax(rounded, axis=1),
            phi=logit_scaled_confidence(log_estimate, labels),
        )
    if kind == "top-k":
        k = min(int(exposure.param or 1), outputs.n_classes)
        loss = _top_k_loss(probs, labels, k)
        return Observation(labels, loss=loss, predicted=predicted, phi=_phi_from_loss(loss))
    if kind == "label":
        return Observation(labels, predicted=predicted)
    if kind == "loss":
        loss = true_class_loss(log_probs, labels)
        return Observation(labels, loss=loss, phi=_phi_from_loss(loss))
    raise AssertionError(f"unhandled exposure {kind}")  # parse_exposure rejects others


def _rounded(probs: np.ndarray, exposure: Exposure) -> tuple[np.ndarray, float]:
    """The probabilities rounded to ``D`` decimals, and the value taken for a 0."""
    d = int(exposure.param or 0)
    return (probs if d > 300 else np.round(probs, d)), 0.25 * 10.0 ** (-d)


def _phi_from_loss(loss: np.ndarray) -> np.ndarray:
    return np.minimum(logit_scaled_confidence_from_loss(loss), PHI_MAX)


def released_logits(
    outputs: ModelOutputs,
    labels: np.ndarray,
    exposure: Exposure | str,
    *,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Logits ``(N, C)`` of one of the attacker's own (reference) models, as the exposure
    would release them, so that its signals are computed by the same rule as the target's.

    The attacker knows how the target's outputs are released and treats its references
    alike: their ``phi`` (LiRA), loss (Attack-R) and ``Pr(x | model)`` (RMIA) then equal
    what :func:`observe` gives on the same outputs. Full logits for ``logits`` and
    ``label``; the floored log of the released vector for ``probabilities``, ``rounded:D``
    and the defences; for ``loss`` and ``top-k:K`` (one number per record) the logits
    ``phi`` on the true class and ``-log(C - 1)`` on the others, whose true-class
    probability and ``phi`` are the released ones.
    """
    exposure = parse_exposure(exposure)
    if exposure.kind in ("logits", "label") and outputs.kind == "logits":
        return np.asarray(outputs.values, dtype=np.float64)
    seen = observe(outputs, labels, exposure, rng=rng)
    if seen.phi is None:  # label exposure of a model that returns probabilities
        return outputs.log_probs()
    if seen.probs is not None:
        return np.maximum(np.log(np.maximum(seen.probs, 1e-300)), _LOG_FLOOR)
    n_classes = outputs.n_classes
    out = np.full((len(labels), n_classes), -np.log(max(n_classes - 1, 1)))
    out[np.arange(len(labels)), labels] = seen.phi
    return out


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


def apply_defence(
    outputs: ModelOutputs,
    exposure: Exposure | str,
    *,
    rng: np.random.Generator | None = None,
) -> ModelOutputs:
    """The model's outputs as deployed with the defence that ``exposure`` names.

    Parameters
    ----------
    outputs : ModelOutputs
        Raw outputs of the model (logits or probabilities).
    exposure : Exposure or str
        An exposure setting; ``temperature:T``, ``noise:SIGMA`` and ``memguard:EPS`` apply
        their defence, every other setting returns ``outputs`` unchanged.
    rng : numpy.random.Generator, optional
        Noise source for ``noise:SIGMA``; default ``np.random.default_rng(0)``.

    Returns
    -------
    ModelOutputs
        Of kind ``"probs"`` for a defence (validated by
        :func:`~miaudit.targets.outputs.check_outputs`), else ``outputs`` itself.

    Examples
    --------
    >>> raw = check_outputs(np.array([[2.0, 0.0]]), "logits")
    >>> apply_defence(raw, "temperature:2").values.round(3)
    array([[0.731, 0.269]])
    >>> apply_defence(raw, "label") is raw
    True
    """
    exposure = parse_exposure(exposure)
    kind, value = exposure.kind, exposure.param
    if kind not in DEFENCES:
        return outputs
    if kind == "temperature":
        released = temperature_scale(outputs.log_probs(), float(value))
    elif kind == "noise":
        rng = np.random.default_rng(0) if rng is None else rng
        released = gaussian_noise(outputs.probs(), float(value), rng)
    else:
        released = memguard(outputs.probs(), float(value))
    return check_outputs(released, "probs", source=f"outputs under the '{exposure}' defence")
