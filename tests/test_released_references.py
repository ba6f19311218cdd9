"""The attacker's references are released the way the target is: every signal an attack
reads of a reference (phi, loss, Pr(x | model), the probability vector) is computed by the
same rule as the target's, under every exposure, saturated records included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

import miaudit
from miaudit.attacks.base import AttackInput, References
from miaudit.attacks.lira import lira_offline, lira_online
from miaudit.attacks.reference_signals import observed_phi
from miaudit.attacks.rmia import observed_p_true, rmia_online
from miaudit.signals.exposure import observe, released_logits
from miaudit.signals.transforms import modified_entropy
from miaudit.targets.outputs import check_outputs

EXPOSURES = ["logits", "probabilities", "rounded:1", "rounded:3", "temperature:0.1",
             "temperature:4", "noise:0.05", "memguard:0.5", "loss", "top-k:1", "top-k:3"]


def _logits(n: int = 200, c: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits from uncertain to saturated far beyond float64 (margins up to 900)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c))
    y = rng.integers(0, c, n)
    z[np.arange(n), y] += np.concatenate([rng.uniform(-3, 60, n - 20), rng.uniform(60, 900, 20)])
    return z, y


@pytest.mark.parametrize("exposure", EXPOSURES)
def test_a_reference_released_like_the_target_gives_the_targets_signals(exposure):
    z, y = _logits()
    target = observe(check_outputs(z, "logits"), y, exposure, rng=np.random.default_rng(3))
    ref = References(released_logits(check_outputs(z, "logits"), y, exposure,
                                      rng=np.random.default_rng(3))[None],
                     np.ones((1, len(y)), bool), y)
    assert np.isfinite(ref.phi).all() and np.isfinite(observed_phi(target)).all()
    np.testing.assert_allclose(ref.phi[0], observed_phi(target), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ref.loss[0], target.loss, rtol=1e-9, atol=1e-12)
    temperatures = [1.0, 2.0] if target.probs is not None else [1.0]
    for temp in temperatures:
        np.testing.assert_allclose(ref.p_true_at(temp)[0], observed_p_true(target, temp),
                                   rtol=1e-9, atol=1e-300)
    if target.probs is not None:  # what Shokri's attack reads of each side
        np.testing.assert_allclose(softmax(ref.logits[0], axis=1), target.probs, atol=1e-12)


def _two_records(exposure):
    """4 IN references with phi near 8 and 4 OUT with phi near 1; record 0 looks exactly
    IN (phi 8, or saturated), record 1 exactly OUT."""
    y = np.zeros(2, int)

    def logits(phi):  # 2 classes: phi = z0 - z1
        return np.column_stack([phi, np.zeros_like(phi)])

    phis = [[7.5, 7.5], [8.5, 8.5], [7.8, 7.8], [8.2, 8.2], [-1, -1], [3, 3], [0, 0], [2, 2]]
    refs = np.stack([released_logits(check_outputs(logits(np.array(p, float)), "logits"), y,
                                     exposure, rng=np.random.default_rng(i))
                     for i, p in enumerate(phis)])
    membership = np.repeat([True, False], 4)[:, None].repeat(2, axis=1)
    target = observe(check_outputs(logits(np.array([8.0, 1.0])), "logits"), y, exposure,
                     rng=np.random.default_rng(9))
    return AttackInput(target=target, references=References(refs, membership, y))


@pytest.mark.parametrize("exposure", ["logits", "probabilities", "rounded:2", "rounded:1",
                                      "temperature:0.1", "loss", "top-k:1"])
def test_the_in_looking_record_outscores_the_out_looking_one(exposure):
    inputs = _two_records(exposure)
    for attack in (lira_online, lira_offline):
        s = attack(inputs)
        assert s[0] > s[1], (attack.__name__, s)
    s = rmia_online(inputs)  # every exposure here releases a loss at least
    assert s[0] >= s[1], s


def test_modified_entropy_of_a_row_that_does_not_sum_to_one():
    """Song & Mittal's formula taken literally with 1 - p, for released rows that do not
    sum to 1 (the sum of the other entries is then no stand-in for 1 - p_y)."""
    c = 30
    rows = np.zeros((3, c))
    rows[0, 0] = 0.5                      # a 50%-confident record, the rest rounded to 0
    rows[1, :2] = [0.9, 0.1]
    rows[2, 0] = 1.0
    y = np.zeros(3, int)
    p_y = rows[:, 0]
    direct = (-(1 - p_y) * np.log(np.maximum(p_y, 1e-300))
              - (rows[:, 1:] * np.log(1 - rows[:, 1:])).sum(axis=1))
    np.testing.assert_allclose(modified_entropy(rows, y), direct, atol=1e-12)
    assert modified_entropy(rows, y)[0] > modified_entropy(rows, y)[1]  # less member-like


def test_location30_lira_keeps_its_power_under_rounding_and_sharp_temperature(shared_file):
    """Saturated members (p_y rounds to 1) must not drop to the bottom of LiRA's ranking:
    rounding to 2 decimals or a sharp temperature leaves LiRA near its power on logits."""
    path = shared_file("location30.npz")
    result = miaudit.audit(data=path, model="mlp", references=4, seed=2,
                           exposure=["logits", "rounded:2", "temperature:0.1"],
                           attacks=["loss", "lira-online", "lira-offline", "rmia-online"])
    m = result.exposure_metrics
    base = m["logits"]["lira-online"].auc
    assert base > 0.85
    for exposure in ("rounded:2", "temperature:0.1"):
        lira = m[exposure]["lira-online"].auc
        assert lira > base - 0.03, exposure   # it was 0.58 when saturated members sank
        assert lira > m[exposure]["loss"].auc + 0.03, exposure
