"""Batched training equals training the same models one by one."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import ConfigError
from miaudit.game import membership_design
from miaudit.models import make_recipe, train
from miaudit.models.adapters import TorchTarget

torch = pytest.importorskip("torch")
from miaudit.models.batched import predict_stacked, train_batched  # noqa: E402


@pytest.mark.parametrize(("activation", "optimizer"), [("tanh", "adam"), ("relu", "sgd")])
def test_batched_models_match_one_by_one(activation, optimizer):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    recipe = make_recipe("mlp", {"hidden": (16, 8), "epochs": 3, "batch_size": 32,
                                 "activation": activation, "optimizer": optimizer,
                                 "lr": 0.01, "weight_decay": 1e-3})
    design = membership_design(200, 4, seed=1)
    seeds = [5, 6, 7, 8]
    params = train_batched(recipe, X, y, design, n_classes=3, seeds=seeds)
    stacked = predict_stacked(params, X, activation)
    assert stacked.shape == (4, 200, 3)
    for m in range(4):
        single = train(recipe, X[design[m]], y[design[m]], n_classes=3, seed=seeds[m])
        logits = TorchTarget(single.module).outputs(X).values
        np.testing.assert_allclose(stacked[m], logits, atol=1e-4)
    # different seeds and records give different models
    assert not np.allclose(stacked[0], stacked[1])


def test_training_tanh_matches_torch_tanh_and_its_gradient():
    from miaudit.models.batched import _training_tanh

    x = torch.linspace(-12, 12, 20001, dtype=torch.float32)
    exact = torch.tanh(x.double())
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    fast = _training_tanh()(a * 1)  # on a non-leaf, as in training (it works in place)
    ref = torch.tanh(b)
    assert (fast.double() - exact).abs().max() < 3e-7
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (fast * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=0)


def test_design_rows_must_have_equal_sizes():
    design = np.zeros((2, 10), dtype=bool)
    design[0, :5] = True
    design[1, :4] = True
    with pytest.raises(ConfigError, match="same number of records"):
        train_batched(make_recipe("logistic"), np.zeros((10, 2)), np.zeros(10, int), design,
                      n_classes=2, seeds=[0, 1])


def test_design_is_balanced_both_ways():
    d = membership_design(100, 8, seed=3)
    assert (d.sum(axis=0) == 4).all() and (d.sum(axis=1) == 50).all()
