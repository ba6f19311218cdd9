"""Signals: from model outputs to what an attacker observes (exposures, output defences,
label-only queries on perturbed inputs) and per-record statistics."""

from miaudit.signals.defences import DEFENCES
from miaudit.signals.exposure import (
    EXPOSURE_KINDS,
    Exposure,
    Observation,
    apply_defence,
    observe,
    parse_exposure,
)
from miaudit.signals.label_queries import (
    AugmentResult,
    BoundaryResult,
    augmentation_correctness,
    boundary_distance,
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
    "DEFENCES",
    "EXPOSURE_KINDS",
    "AugmentResult",
    "BoundaryResult",
    "Exposure",
    "Observation",
    "apply_defence",
    "augmentation_correctness",
    "boundary_distance",
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
