"""Reference training: the cache, resuming a killed run, and the three executors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import miaudit

pytest.importorskip("torch")
pytest.importorskip("safetensors")

ARGS = {"data": "wine", "model": "mlp", "model_params": {"hidden": (16,), "epochs": 30},
        "references": 5, "targets": 2, "attacks": ["loss", "lira-online", "rmia-offline"]}


@pytest.fixture(scope="module")
def plain():
    return miaudit.audit(**ARGS)


def _same(a, b, atol=1e-5):
    np.testing.assert_allclose(a.signals["logits"], b.signals["logits"], atol=atol)
    assert np.array_equal(a.signals["membership"], b.signals["membership"])
    for name in ARGS["attacks"]:
        assert a.summary()["attacks"][name]["auc"] == pytest.approx(
            b.summary()["attacks"][name]["auc"], abs=1e-4)


def test_cache_is_filled_then_used(tmp_path, plain):
    first = miaudit.audit(**ARGS, cache_dir=tmp_path)
    assert first.summary()["target"]["training"]["trained"] == 8  # 6 references + 2
    entries = list(tmp_path.glob("*/*/meta.json"))
    assert len(entries) == 8
    sizes = [json.loads(e.read_text())["n_train_records"] for e in entries]
    # the 6 references train on exact halves; the target pair's sizes are drawn per record
    # and add up to the game
    half = first.summary()["data"]["n_records_in_game"] // 2
    assert sizes.count(half) >= 6
    second = miaudit.audit(**ARGS, cache_dir=tmp_path)
    stats = second.summary()["target"]["training"]
    assert stats["trained"] == 0 and stats["cached"] == 8
    _same(first, second, atol=0)
    _same(first, plain)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_cache_entry_is_set_aside_and_retrained(tmp_path, damage):
    from miaudit.errors import MiauditWarning

    args = {**ARGS, "references": 1, "targets": 1, "attacks": ["loss"]}
    first = miaudit.audit(**args, cache_dir=tmp_path)
    logits = sorted(tmp_path.glob("*/*/logits.npy"))[0]
    data = bytearray(logits.read_bytes())
    if damage == "truncate":
        data = data[:40]
    else:  # a flipped bit in the values: still a valid .npy file
        data[-3] ^= 0x10
    logits.write_bytes(bytes(data))
    with pytest.warns(MiauditWarning, match="damaged"):
        again = miaudit.audit(**args, cache_dir=tmp_path)
    assert again.summary()["target"]["training"]["trained"] == 1
    # retrained alone, not batched with the other model: the same up to rounding
    np.testing.assert_allclose(first.signals["logits"], again.signals["logits"], atol=1e-5)
    assert len(list(tmp_path.glob("*/.damaged-*"))) == 1
    third = miaudit.audit(**args, cache_dir=tmp_path)  # the retrained entry is sound
    assert third.summary()["target"]["training"]["trained"] == 0


def test_cached_weights_load_into_the_recipe_module(tmp_path):
    import torch

    from miaudit.data import load_dataset
    from miaudit.training import build_module, make_recipe
    from miaudit.training.cache import ModelCache

    result = miaudit.audit(**{**ARGS, "references": 1, "targets": 1,
                              "attacks": ["loss"]}, cache_dir=tmp_path)
    cache = ModelCache(tmp_path)
    entry = next(tmp_path.glob("*/*/meta.json")).parent
    key = entry.name
    weights = cache.load_weights(key)
    module = build_module(make_recipe("mlp", ARGS["model_params"]), 13, 3)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    ds = load_dataset("wine")
    logits = module(torch.as_tensor(ds.X, dtype=torch.float32)).detach().numpy()
    index = json.loads((entry / "meta.json").read_text())["model_index"]
    ids = list(ds.ids)
    rows = [ids.index(i) for i in result.signals["record_ids"]]
    np.testing.assert_allclose(logits[rows], result.signals["logits"][index], atol=1e-5)
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.pt"))


@pytest.mark.slow  # minutes on 2 cores; test_checkpoint kills a run in the default suite
def test_a_killed_run_resumes_without_retraining(tmp_path):
    cache = tmp_path / "cache"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "miaudit", "run", "--data", "digits", "--model", "mlp",
           "-p", "epochs=60", "-p", "hidden=32", "--references", "5", "--models-per-batch",
           "1", "--attacks", "loss,lira-online", "--cache-dir", str(cache), "--out", str(out),
           "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache.glob("*/*/meta.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(list(cache.glob("*/*/meta.json")))
    assert 2 <= stored < 8, "the run finished or stored nothing before it was killed"
    assert not out.exists()  # nothing half-written
    for entry in cache.glob("*/*"):
        if not entry.name.startswith("."):
            assert {p.name for p in entry.iterdir()} == {"meta.json", "logits.npy",
                                                         "weights.safetensors"}
    done = subprocess.run([*cmd[:-1], "--format", "json"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    training = json.loads(done.stdout)["target"]["training"]
    assert training["cached"] >= stored and training["trained"] == 8 - training["cached"]


def test_process_pool_gives_the_same_models(plain):
    pooled = miaudit.audit(**ARGS, executor="process", workers=2)
    assert pooled.summary()["target"]["training"]["executor"] == "process"
    _same(plain, pooled)


def test_ray_executor_on_a_local_instance(plain):
    pytest.importorskip("ray")
    result = miaudit.audit(**ARGS, executor="ray", workers=2)
    assert result.summary()["target"]["training"]["executor"] == "ray"
    _same(plain, result)


def test_another_label_column_never_reuses_cached_models(tmp_path):
    import pandas as pd

    from miaudit.data import load_dataset

    ds = load_dataset("wine")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(ds.X, columns=[f"x{i}" for i in range(ds.n_features)])
    frame["a"] = rng.integers(0, 2, ds.n_records)
    frame["b"] = rng.integers(0, 2, ds.n_records)
    frame.to_csv(tmp_path / "two.csv", index=False)
    common = {"data": tmp_path / "two.csv", "model": "logistic", "references": 1,
              "attacks": ["loss"], "cache_dir": tmp_path / "cache"}
    miaudit.audit(label_column="a", **common)
    other = miaudit.audit(label_column="b", **common)
    assert other.summary()["target"]["training"]["cached"] == 0


def test_recipe_objects_are_validated():
    from miaudit.training import Recipe

    with pytest.raises(miaudit.errors.ConfigError, match="optimizer must be one of"):
        miaudit.audit(data="wine", model=Recipe("mlp", hidden=(8,), optimizer="bogus"))
    with pytest.raises(miaudit.errors.ConfigError, match="batch_size must be >= 1"):
        miaudit.audit(data="wine", model=Recipe("mlp", hidden=(8,), batch_size=0))
    with pytest.raises(miaudit.errors.ConfigError, match="needs at least one hidden layer"):
        miaudit.audit(data="wine", model="mlp", model_params=["hidden="])


def test_unknown_executor():
    with pytest.raises(miaudit.errors.ConfigError,
                       match="executor must be one of inprocess, process or ray"):
        miaudit.audit(**ARGS, executor="spark")


def test_a_bernoulli_design_trains_caches_and_reuses(tmp_path):
    # a target drawn per record (rows of unequal size), in chunks that mix sizes
    from miaudit.game import membership_design
    from miaudit.training import make_recipe
    from miaudit.training.cache import ModelCache
    from miaudit.training.executors import train_pool_models

    rng = np.random.default_rng(0)
    X = rng.normal(size=(121, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    recipe = make_recipe("mlp", {"hidden": (8,), "epochs": 3, "batch_size": 16})
    design = membership_design(121, 4, seed=1, bernoulli=1)
    assert len(set(design.sum(axis=1).tolist())) > 1
    common = {"n_classes": 2, "seed": 0, "data_fingerprint": "toy", "chunk": 3}
    plain, _, _, _ = train_pool_models(recipe, X, y, design, **common)
    first, _, stats, _ = train_pool_models(recipe, X, y, design, cache=ModelCache(tmp_path),
                                           **common)
    assert stats["trained"] == 4
    np.testing.assert_allclose(first, plain, atol=1e-5)  # chunked as 3 + 1 either way
    sizes = sorted(json.loads(p.read_text())["n_train_records"]
                   for p in tmp_path.glob("*/*/meta.json"))
    assert sizes == sorted(design.sum(axis=1).tolist())
    again, _, stats, _ = train_pool_models(recipe, X, y, design, cache=ModelCache(tmp_path),
                                           **common)
    assert stats["cached"] == 4 and np.array_equal(again, first)
    # another Bernoulli draw of the target: only the target pair is trained again
    other = membership_design(121, 4, seed=1, bernoulli=1)
    other[:2] = membership_design(121, 2, seed=9, bernoulli=1)
    _, _, stats, _ = train_pool_models(recipe, X, y, other, cache=ModelCache(tmp_path),
                                       **common)
    assert (stats["trained"], stats["cached"]) == (2, 2)


class _Bar:
    """A stand-in progress bar that records what training reports."""

    def __init__(self):
        self.total, self.advanced, self.descriptions = None, 0, []

    def add_task(self, description, total):
        self.total = total
        return 0

    def update(self, task, advance=0, description=None):
        self.advanced += advance
        if description:
            self.descriptions.append(description)


@pytest.mark.parametrize("params", [{"epochs": 3}, {"epochs": 6, "early_stopping": 1}],
                         ids=["plain", "early-stopping"])
def test_training_progress_counts_model_epochs(params):
    """The bar counts model-epochs and names the epoch reached; models stopped early are
    counted in full when their chunk ends, so the bar always completes."""
    from miaudit.training import make_recipe
    from miaudit.training.executors import train_pool_models

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 8)).astype(np.float32), rng.integers(0, 3, 300)
    design = rng.random((4, 300)) < 0.5
    bar = _Bar()
    train_pool_models(make_recipe("mlp", {"hidden": (16,), **params}), X, y, design,
                      n_classes=3, seed=0, data_fingerprint="x", bar=bar,
                      chunk=2)
    assert bar.total == bar.advanced == 4 * params["epochs"]
    epochs = [int(d.rsplit("epoch ", 1)[1].split("/")[0]) for d in bar.descriptions]
    assert epochs[0] == 1 and all(d.startswith("training 4 models, epoch ") for d in
                                  bar.descriptions)
    if "early_stopping" not in params:
        assert epochs == [1, 2, 3, 1, 2, 3]  # two chunks of two models
