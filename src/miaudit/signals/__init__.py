"""Signals: from model outputs to what an attacker observes and per-record statistics."""

from miaudit.signals.exposure import (
    EXPOSURE_KINDS,
    Exposure,
    Observation,
    observe,
    parse_exposure,
)
from miaudit.signals.transforms import (
    correctness,
    entropy,
    logit_scaled_confidence,
    logit_scaled_confidence_from_probs,
    loss_from_logits,
    modified_entropy,
    true_class_loss,
)

__all__ = [
    "EXPOSURE_KINDS",
    "Exposure",
    "Observation",
    "correctness",
    "entropy",
    "logit_scaled_confidence",
    "logit_scaled_confidence_from_probs",
    "loss_from_logits",
    "modified_entropy",
    "observe",
    "parse_exposure",
    "true_class_loss",
]
