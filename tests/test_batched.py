"""Batched training equals training the same models one by one."""

from __future__ import annotations

import numpy as np
import pytest

from miaudit.errors import ConfigError
from miaudit.game import membership_design
from miaudit.targets.adapters import TorchTarget
from miaudit.training import make_recipe, train

torch = pytest.importorskip("torch")
from miaudit.training.batched import predict_stacked, train_batched  # noqa: E402


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
    from miaudit.training.stacked import _training_tanh

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


def _unequal_design(n: int, sizes, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    design = np.zeros((len(sizes), n), dtype=bool)
    for m, k in enumerate(sizes):
        design[m, rng.choice(n, k, replace=False)] = True
    return design


@pytest.mark.parametrize(("activation", "optimizer", "extra"), [
    ("tanh", "adam", {}),
    ("relu", "sgd", {}),
    ("tanh", "adam", {"dropout": 0.2, "label_smoothing": 0.1}),
    ("relu", "adam", {"early_stopping": 2, "epochs": 8}),
])
@pytest.mark.parametrize("sparse", [False, True])
def test_rows_of_unequal_size_match_one_by_one(activation, optimizer, extra, sparse):
    # 2, 5, 4, 4 and 1 steps per epoch at batch 32 (the smallest row leaves the batch
    # first, the largest trains alone at the end); the last minibatches are padded
    rng = np.random.default_rng(0)
    X = (rng.random((300, 40)) < 0.1).astype(np.float32)
    y = (X[:, :5].sum(axis=1) > X[:, 5:10].sum(axis=1)).astype(int) + (X[:, 10] != 0)
    design = _unequal_design(300, [60, 150, 100, 110, 20])
    seeds = [3, 1, 4, 9, 5]
    recipe = make_recipe("mlp", {"hidden": (16, 8), "epochs": 3, "batch_size": 32,
                                 "activation": activation, "optimizer": optimizer,
                                 "lr": 0.01, "weight_decay": 1e-3, **extra})
    from miaudit.training.batched import train_models

    trained = train_models(recipe, X, y, design, n_classes=3, seeds=seeds)
    assert trained.batched
    stacked = predict_stacked(trained.params, X, activation)
    for m in range(5):
        single = train(recipe, X[design[m]], y[design[m]], n_classes=3, seed=seeds[m])
        np.testing.assert_allclose(stacked[m], TorchTarget(single.module).outputs(X).values,
                                   atol=1e-4)
        assert trained.info[m].get("best_epoch") == single.best_epoch
    # the sparse first layer gives the same models
    again = train_batched(recipe, X, y, design, n_classes=3, seeds=seeds, sparse=sparse)
    for a, b in zip(trained.params, again, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_bernoulli_design_trains_batched_and_deterministically():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(201, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    design = membership_design(201, 4, seed=2, bernoulli=1)
    assert design[0].sum() != design[2].sum()  # the Bernoulli pair differs in size
    recipe = make_recipe("mlp", {"hidden": (8,), "epochs": 2, "batch_size": 16})
    epochs = []
    a = train_batched(recipe, X, y, design, n_classes=2, seeds=[1, 2, 3, 4],
                      on_epoch=epochs.append)
    b = train_batched(recipe, X, y, design, n_classes=2, seeds=[1, 2, 3, 4])
    assert epochs == [1, 2]
    for p, q in zip(a, b, strict=True):
        assert torch.equal(p, q)
    single = train(recipe, X[design[0]], y[design[0]], n_classes=2, seed=1)
    np.testing.assert_allclose(predict_stacked(a, X, "tanh")[0],
                               TorchTarget(single.module).outputs(X).values, atol=1e-5)


def test_equal_rows_take_the_plain_path(monkeypatch):
    # no padding and no slicing of the stack when every row has as many records
    import miaudit.training.stacked as stacked

    def refuse(*args, **kwargs):
        raise AssertionError("sliced")

    monkeypatch.setattr(stacked, "_slice_models", refuse)
    X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    design = membership_design(64, 4, seed=0)
    train_batched(make_recipe("mlp", {"hidden": (4,), "epochs": 2, "batch_size": 10}), X,
                  (X[:, 0] > 0).astype(int), design, n_classes=2, seeds=[0, 1, 2, 3])


def test_seeds_must_match_the_models():
    with pytest.raises(ConfigError, match="3 seeds for 2 models"):
        train_batched(make_recipe("logistic"), np.zeros((10, 2)), np.zeros(10, int),
                      np.ones((2, 10), dtype=bool), n_classes=2, seeds=[0, 1, 2])


def test_design_is_balanced_both_ways():
    d = membership_design(100, 8, seed=3)
    assert (d.sum(axis=0) == 4).all() and (d.sum(axis=1) == 50).all()


def test_bernoulli_pairs_of_the_design():
    d = membership_design(1000, 6, seed=3)
    b = membership_design(1000, 6, seed=3, bernoulli=2)
    assert (b[4:] == d[4:]).all()  # the exact halves do not depend on the Bernoulli draws
    assert (b.sum(axis=0) == 3).all()  # still complementary pairs
    assert (b[0] != d[0]).any() and (b[0] != b[2]).any()
    assert 400 < b[0].sum() < 600 and b[0].sum() + b[1].sum() == 1000
    assert (b == membership_design(1000, 6, seed=3, bernoulli=2)).all()
    lone = membership_design(10, 1, seed=0, bernoulli=1)
    assert lone.shape == (1, 10)
    # in the online game, target 0's references (models 2..) have each record IN half
    # the time whatever its membership in the target
    assert (b[2:].sum(axis=0) == 2).all()
    # the per-record draws of model 0 are independent fair coins: across seeds each
    # record is IN about half the time, and two records' memberships are uncorrelated
    rows = np.stack([membership_design(50, 2, seed=s, bernoulli=1)[0] for s in range(2000)])
    assert np.abs(rows.mean(axis=0) - 0.5).max() < 0.05
    assert abs(np.corrcoef(rows[:, 0], rows[:, 1])[0, 1]) < 0.1
    with pytest.raises(ConfigError, match="bernoulli must lie between 0 and 3"):
        membership_design(10, 6, bernoulli=4)


def _sparse_data(n: int, d: int, density: float, *, binary: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, d)) < density
    X = (mask * (1.0 if binary else rng.normal(size=(n, d)))).astype(np.float32)
    y = (X[:, :5].sum(axis=1) > X[:, 5:10].sum(axis=1)).astype(int) + (X[:, 10] != 0)
    return X, y


def test_sparse_rows_rebuild_the_dense_minibatch():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from miaudit.training.sparse import SparseRows

    X, _ = _sparse_data(40, 33, 0.1, binary=False)
    X[3] = 0  # a record without any non-zero input
    rows = SparseRows(X)

    @settings(max_examples=40, deadline=None)
    @given(st.integers(1, 4), st.integers(1, 12), st.integers(0, 2**31))
    def check(k, b, seed):
        idx = torch.as_tensor(np.random.default_rng(seed).integers(0, len(X), size=(k, b)))
        batch = rows.batch(idx)
        dense = torch.zeros(k * b, k * X.shape[1])
        dense[batch.bags.long(), batch.indices.long()] = batch.weights
        expected = torch.as_tensor(X)[idx.reshape(-1)]
        for m in range(k):  # model m's records use model m's block of features
            block = dense[m * b:(m + 1) * b, m * X.shape[1]:(m + 1) * X.shape[1]]
            torch.testing.assert_close(block, expected[m * b:(m + 1) * b], atol=0, rtol=0)
        assert dense.count_nonzero() == expected.count_nonzero()
        assert batch.offsets.tolist() == [0, *np.cumsum(
            (expected != 0).sum(dim=1).numpy())[:-1].tolist()]

    check()


@pytest.mark.parametrize("binary", [True, False])
def test_sparse_first_layer_forward_and_gradients_match_dense(binary):
    from miaudit.training.sparse import SparseRows
    from miaudit.training.stacked import forward_stacked, init_stacked

    X, _ = _sparse_data(60, 40, 0.08, binary=binary)
    rows = SparseRows(X)
    assert (rows.values is None) == binary
    recipe = make_recipe("mlp", {"hidden": (16, 8)})
    idx = torch.as_tensor(np.random.default_rng(1).integers(0, 60, size=(3, 10)))
    weights = torch.randn(3, 10, 4, generator=torch.Generator().manual_seed(2))
    grads = []
    for x in (rows.batch(idx), torch.as_tensor(X)[idx]):
        params = init_stacked(recipe, 40, 4, [0, 1, 2])
        out = forward_stacked(params, x, "tanh", training=True)
        (out * weights).sum().backward()
        grads.append((out.detach(), [p.grad for p in params]))
    (sparse_out, sparse_grads), (dense_out, dense_grads) = grads
    torch.testing.assert_close(sparse_out, dense_out, atol=1e-5, rtol=1e-5)
    for gs, gd in zip(sparse_grads, dense_grads, strict=True):
        torch.testing.assert_close(gs, gd, atol=1e-5, rtol=1e-5)
    assert dense_grads[0].abs().sum() > 0


@pytest.mark.parametrize("binary", [True, False])
def test_sparse_and_dense_training_give_the_same_models(binary):
    X, y = _sparse_data(300, 64, 0.04, binary=binary)
    recipe = make_recipe("mlp", {"hidden": (32, 16), "epochs": 3, "batch_size": 32,
                                 "lr": 0.01, "dropout": 0.1})
    design = membership_design(300, 4, seed=0)
    runs = [train_batched(recipe, X, y, design, n_classes=3, seeds=[1, 2, 3, 4], sparse=s)
            for s in (True, False)]
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)
    # and the default picks the sparse layer for these inputs (4% non-zero)
    default = train_batched(recipe, X, y, design, n_classes=3, seeds=[1, 2, 3, 4])
    for a, b in zip(default, runs[0], strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_sparse_first_layer_rule():
    from miaudit.training.sparse import SPARSE_DENSITY, sparse_first_layer

    X, _ = _sparse_data(100, 64, SPARSE_DENSITY / 2, binary=True)
    assert sparse_first_layer(X)
    assert not sparse_first_layer(X, "cuda")
    assert not sparse_first_layer(X[:, :16])  # too few features to gain anything
    assert not sparse_first_layer(np.ones_like(X))
    assert not sparse_first_layer(np.zeros((0, 64)))
