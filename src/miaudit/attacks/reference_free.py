"""Attacks that need only the target model's outputs (no reference models).

Each returns a score per record, higher meaning "more likely a member". They read the
target's release alone: their knowledge (``Attack.knowledge``) is empty.
"""

from __future__ import annotations

import numpy as np

from miaudit.attacks.base import Attack, AttackInput, register_attack
from miaudit.signals.transforms import correctness, entropy, modified_entropy


def loss_attack(inputs: AttackInput) -> np.ndarray:
    """LOSS attack: score = ``-loss`` (Yeom et al., CSF 2018). Members have lower loss."""
    return -inputs.target.loss


def confidence_attack(inputs: AttackInput) -> np.ndarray:
    """Confidence attack: score = ``p_y`` (Salem et al., NDSS 2019).

    ``p_y = exp(-loss)`` is a monotone function of the loss, so its ROC equals the LOSS
    attack's; it is kept because reports in the literature quote it by name.
    """
    return np.exp(-inputs.target.loss)


def entropy_attack(inputs: AttackInput) -> np.ndarray:
    """Entropy attack: score = ``-H(p)`` (Salem et al., NDSS 2019). Members get sharper outputs."""
    return -entropy(inputs.target.probs)


def mentr_attack(inputs: AttackInput) -> np.ndarray:
    """Modified-entropy attack: score = ``-Mentr`` (Song & Mittal, USENIX Security 2021)."""
    return -modified_entropy(inputs.target.probs, inputs.target.labels)


def correctness_attack(inputs: AttackInput) -> np.ndarray:
    """Correctness (gap) attack: score = ``1[argmax = y]`` (Yeom et al., CSF 2018).

    A binary score: its ROC has a single operating point.
    """
    return correctness(inputs.target.predicted, inputs.target.labels)


register_attack(
    Attack("loss", loss_attack, frozenset({"loss"}), "minus the loss on the true label",
           "Yeom et al., CSF 2018")
)
register_attack(
    Attack("confidence", confidence_attack, frozenset({"loss"}),
           "probability of the true label", "Salem et al., NDSS 2019")
)
register_attack(
    Attack("entropy", entropy_attack, frozenset({"probs"}),
           "minus the entropy of the probability vector", "Salem et al., NDSS 2019")
)
register_attack(
    Attack("mentr", mentr_attack, frozenset({"probs"}), "minus the modified entropy",
           "Song & Mittal, USENIX Security 2021")
)
register_attack(
    Attack("correctness", correctness_attack, frozenset({"predicted"}),
           "1 if the predicted label is right, else 0", "Yeom et al., CSF 2018")
)
