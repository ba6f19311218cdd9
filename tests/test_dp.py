"""Training defences in recipes: dropout, label smoothing, early stopping and DP-SGD."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest

import miaudit
from miaudit.errors import ConfigError
from miaudit.game import membership_design
from miaudit.training import Recipe, build_module, make_recipe, train
from miaudit.training.recipes import early_stopping_split

torch = pytest.importorskip("torch")
from miaudit.targets.adapters import TorchTarget  # noqa: E402
from miaudit.training.batched import (  # noqa: E402
    predict_stacked,
    stack_state_dicts,
    stacked_state_dicts,
    train_batched,
    train_models,
)
from miaudit.training.cache import recipe_key  # noqa: E402


def _toy(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    return X, y


def _logits(trained, X):
    return TorchTarget(trained.module).outputs(X).values


# ---------------------------------------------------------------- recipe parameters


def test_dp_and_defence_parameters_parse():
    r = make_recipe("mlp", ["dp_epsilon=4", "dp_max_grad_norm=0.5", "dp_delta=1e-6"])
    assert (r.dp_epsilon, r.dp_max_grad_norm, r.dp_delta, r.dp) == (4.0, 0.5, 1e-6, True)
    assert "DP-SGD eps=4" in r.describe()
    for off in ("inf", "Infinity", "none", math.inf, None):
        assert make_recipe("mlp", {"dp_epsilon": off}).dp_epsilon is None
    assert Recipe("mlp", dp_epsilon=math.inf) == Recipe("mlp")
    r = make_recipe("mlp", ["dropout=0.2", "label-smoothing=0.1", "early_stopping=5"])
    assert (r.dropout, r.label_smoothing, r.early_stopping, r.dp) == (0.2, 0.1, 5, False)
    assert "dropout 0.2" in r.describe() and "early stopping (patience 5)" in r.describe()
    assert make_recipe("mlp", ["dp_noise_multiplier=1.1"]).dp


@pytest.mark.parametrize(("params", "match"), [
    (["dp_epsilon=4", "dp_noise_multiplier=1"], "not both"),
    (["dp_epsilon=-1"], "dp_epsilon must be a number > 0"),
    (["dp_epsilon=4", "early_stopping=3"], "early_stopping with DP-SGD"),
    (["dropout=1"], r"dropout must lie in \[0, 1\)"),
    (["label_smoothing=1.5"], "label_smoothing"),
    (["early_stopping=-1"], "early_stopping"),
    (["dp_delta=0"], "dp_delta"),
    (["dp_max_grad_norm=0"], "dp_max_grad_norm"),
    (["early_stopping=2.5"], "wrong type"),
    (["dp_epsilon=lots"], "wrong type"),
])
def test_bad_defence_parameters_are_refused(params, match):
    with pytest.raises(ConfigError, match=match):
        make_recipe("mlp", params)


def test_dropout_is_refused_where_there_is_no_hidden_layer():
    with pytest.raises(ConfigError, match="dropout applies after hidden layers"):
        make_recipe("logistic", ["dropout=0.1"])


def test_cache_keys_of_recipes_without_defences_do_not_change():
    old = {"name": "mlp", "hidden": [256, 128], "activation": "tanh", "epochs": 60,
           "batch_size": 64, "lr": 1e-3, "weight_decay": 0.0, "optimizer": "adam"}
    assert recipe_key(make_recipe("mlp")) == old
    # settings of DP-SGD that is off do not change the model
    assert recipe_key(make_recipe("mlp", ["dp_max_grad_norm=3"])) == old
    key = recipe_key(make_recipe("mlp", ["dp_epsilon=4", "dropout=0.1"]))
    assert key["dp_epsilon"] == 4.0 and key["dropout"] == 0.1 and key["dp_delta"] == 1e-5


def test_summary_recipe_is_json_ready_and_round_trips():
    import json

    r = make_recipe("mlp", ["dp_epsilon=inf", "label_smoothing=0.1"])
    d = r.to_dict()
    json.dumps(d, allow_nan=False)
    name = d.pop("name")
    assert make_recipe(name, d) == r


# ---------------------------------------------------------------- non-DP defences


def test_early_stopping_split_is_seeded_and_disjoint():
    fit, val = early_stopping_split(50, seed=3)
    assert len(val) == 5 and len(fit) == 45
    assert not set(fit) & set(val) and sorted([*fit, *val]) == list(range(50))
    again = early_stopping_split(50, seed=3)
    assert np.array_equal(fit, again[0])
    assert not np.array_equal(val, early_stopping_split(50, seed=4)[1])


def test_early_stopping_stops_and_restores_the_best_epoch():
    X, y = _toy()
    # noisy labels: the validation loss rises long before 300 epochs
    y = np.where(np.random.default_rng(1).random(len(y)) < 0.3, (y + 1) % 3, y)
    recipe = make_recipe("mlp", {"hidden": (32,), "epochs": 300, "batch_size": 32,
                                 "lr": 0.01, "early_stopping": 3})
    trained = train(recipe, X, y, n_classes=3, seed=0)
    assert trained.best_epoch is not None
    assert len(trained.history) == trained.best_epoch + 3 < 300
    # the restored weights are the best epoch's: retrain for exactly that many epochs
    # without early stopping on the same 90% and compare
    fit, _ = early_stopping_split(len(y), 0)
    plain = train(dataclasses.replace(recipe, early_stopping=0, epochs=trained.best_epoch),
                  X[fit], y[fit], n_classes=3, seed=0)
    np.testing.assert_allclose(_logits(trained, X), _logits(plain, X), atol=1e-5)


def test_label_smoothing_lowers_the_confidence():
    X, y = _toy()
    base = make_recipe("mlp", {"hidden": (32,), "epochs": 60, "batch_size": 32, "lr": 0.01})

    def max_prob(recipe):
        z = _logits(train(recipe, X, y, n_classes=3, seed=0), X)
        p = np.exp(z - z.max(1, keepdims=True))
        return (p / p.sum(1, keepdims=True)).max(1).mean()

    plain, smoothed = max_prob(base), max_prob(dataclasses.replace(base, label_smoothing=0.3))
    assert smoothed < plain - 0.05
    assert smoothed < 1 - 0.3 + 0.3 / 3 + 0.02  # the smoothed target's top probability


def test_dropout_changes_training_and_keeps_the_plain_weight_layout():
    X, y = _toy()
    base = make_recipe("mlp", {"hidden": (16, 8), "epochs": 5, "batch_size": 32, "lr": 0.01})
    with_dropout = dataclasses.replace(base, dropout=0.5)
    a = train(with_dropout, X, y, n_classes=3, seed=0)
    b = train(base, X, y, n_classes=3, seed=0)
    assert not np.allclose(_logits(a, X), _logits(b, X), atol=1e-3)
    # deterministic for a seed, and identity in eval mode (same outputs twice)
    again = train(with_dropout, X, y, n_classes=3, seed=0)
    np.testing.assert_array_equal(_logits(a, X), _logits(again, X))
    np.testing.assert_array_equal(_logits(a, X), _logits(a, X))
    assert list(a.module.state_dict()) == list(build_module(base, 12, 3).state_dict())


@pytest.mark.parametrize("extra", [
    {"dropout": 0.3},
    {"label_smoothing": 0.2},
    {"early_stopping": 2, "epochs": 40},
    {"dropout": 0.2, "label_smoothing": 0.1, "early_stopping": 3, "epochs": 30},
])
def test_batched_defences_match_one_by_one(extra):
    X, y = _toy()
    recipe = make_recipe("mlp", {"hidden": (16, 8), "epochs": 3, "batch_size": 32,
                                 "lr": 0.01, **extra})
    design = membership_design(200, 4, seed=1)
    seeds = [5, 6, 7, 8]
    trained = train_models(recipe, X, y, design, n_classes=3, seeds=seeds)
    assert trained.batched
    stacked = predict_stacked(trained.params, X, "tanh")
    for m in range(4):
        single = train(recipe, X[design[m]], y[design[m]], n_classes=3, seed=seeds[m])
        np.testing.assert_allclose(stacked[m], _logits(single, X), atol=1e-4)
        assert trained.info[m].get("best_epoch") == single.best_epoch


def test_stacking_state_dicts_round_trips():
    X, y = _toy()
    recipe = make_recipe("mlp", {"hidden": (16, 8), "epochs": 1})
    params = train_batched(recipe, X, y, membership_design(200, 2, seed=0), n_classes=3,
                           seeds=[0, 1])
    again = stack_state_dicts(recipe, stacked_state_dicts(params), 12, 3)
    for a, b in zip(params, again, strict=True):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- DP-SGD

pytest.importorskip("opacus")
from miaudit.training.dp import dp_accounting  # noqa: E402

DP_SMALL = {"hidden": (16,), "epochs": 3, "batch_size": 32, "lr": 0.01}


def test_dp_target_epsilon_is_reached_by_the_accountant():
    X, y = _toy()
    recipe = make_recipe("mlp", {**DP_SMALL, "dp_epsilon": 2.0})
    trained = train(recipe, X, y, n_classes=3, seed=0)
    eps = trained.privacy["epsilon"]
    assert 2.0 - 0.02 <= eps <= 2.0  # Opacus' search stops within 0.01 below the target
    assert trained.privacy["accountant"] == "rdp"
    assert trained.privacy["steps"] == 3 * math.ceil(200 / 32)
    assert eps == pytest.approx(dp_accounting(recipe, 200).epsilon, rel=1e-12)


def test_dp_epsilon_equals_opacus_own_accountant_for_a_noise_multiplier():
    from opacus.accountants import RDPAccountant

    X, y = _toy()
    recipe = make_recipe("mlp", {**DP_SMALL, "dp_noise_multiplier": 1.3, "dp_delta": 1e-4})
    trained = train(recipe, X, y, n_classes=3, seed=0)
    q = 1 / math.ceil(200 / 32)
    accountant = RDPAccountant()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3 * math.ceil(200 / 32)):
            accountant.step(noise_multiplier=1.3, sample_rate=q)
        expected = accountant.get_epsilon(delta=1e-4)
    assert trained.privacy["epsilon"] == pytest.approx(expected, rel=1e-9)
    assert trained.privacy["noise_multiplier"] == 1.3
    # more noise: a smaller epsilon
    noisier = dp_accounting(dataclasses.replace(recipe, dp_noise_multiplier=2.6), 200)
    assert noisier.epsilon < expected


def test_dp_training_is_deterministic_and_clipping_bites():
    X, y = _toy()
    recipe = make_recipe("mlp", {**DP_SMALL, "dp_noise_multiplier": 0.5,
                                 "dropout": 0.2, "label_smoothing": 0.1})
    a, b = (train(recipe, X, y, n_classes=3, seed=0) for _ in range(2))
    np.testing.assert_array_equal(_logits(a, X), _logits(b, X))
    assert not any(k.startswith("_module") for k in a.module.state_dict())
    plain = train(dataclasses.replace(recipe, dp_noise_multiplier=0.0), X, y, n_classes=3,
                  seed=0)
    assert not np.allclose(_logits(a, X), _logits(plain, X), atol=1e-3)
    loaded = build_module(recipe, 12, 3)
    loaded.load_state_dict(a.module.state_dict())
    np.testing.assert_allclose(_logits(a, X), TorchTarget(loaded).outputs(X).values)


def test_dp_models_are_trained_one_by_one_with_their_accounting():
    X, y = _toy()
    recipe = make_recipe("mlp", {**DP_SMALL, "dp_epsilon": 3.0})
    design = membership_design(200, 2, seed=0)
    trained = train_models(recipe, X, y, design, n_classes=3, seeds=[4, 5])
    assert not trained.batched
    logits = predict_stacked(trained.params, X, "tanh")
    single = train(recipe, X[design[1]], y[design[1]], n_classes=3, seed=5)
    np.testing.assert_allclose(logits[1], _logits(single, X), atol=1e-5)
    assert trained.info[1]["privacy"]["epsilon"] == single.privacy["epsilon"]
    with pytest.raises(ConfigError, match="train_models"):
        train_batched(recipe, X, y, design, n_classes=3, seeds=[4, 5])


def test_a_dp_audit_reports_the_accountant_epsilon(tmp_path):
    params = {"hidden": (16,), "epochs": 3, "dp_epsilon": 2.0}
    result = miaudit.audit(data="wine", model="mlp", model_params=params, references=2,
                           attacks=["loss", "lira-online"], cache_dir=tmp_path)
    target = result.summary()["target"]
    stats = target["training"]
    assert stats["dp"]["accountant"] == "rdp" and stats["trained"] == 4
    assert target["dp_epsilon_accountant"] == stats["dp_epsilon_accountant"]
    assert 2.0 - 0.02 <= target["dp_epsilon_accountant"] <= 2.0
    assert "DP-SGD" in target["description"]
    again = miaudit.audit(data="wine", model="mlp", model_params=params, references=2,
                          attacks=["loss", "lira-online"], cache_dir=tmp_path)
    assert again.summary()["target"]["training"]["cached"] == 4
    assert again.summary()["target"]["dp_epsilon_accountant"] == \
        target["dp_epsilon_accountant"]
    np.testing.assert_array_equal(again.signals["logits"], result.signals["logits"])


def test_an_early_stopping_audit_reports_the_best_epochs():
    result = miaudit.audit(data="breast_cancer", model="mlp", attacks=["loss"], references=2,
                           model_params={"hidden": (64,), "epochs": 200, "lr": 0.01,
                                         "early_stopping": 2})
    es = result.summary()["target"]["training"]["early_stopping"]
    assert es["patience"] == 2 and 1 <= es["best_epoch"] < 200
    lo, hi = es["best_epoch_range"]
    assert 1 <= lo <= es["best_epoch"] <= hi < 200
