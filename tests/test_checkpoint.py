"""Checkpointed batched training: a run stopped at any step and resumed from its last
checkpoint trains bit-identical models (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from miaudit.errors import MiauditWarning  # noqa: E402
from miaudit.game import membership_design  # noqa: E402
from miaudit.training import make_recipe  # noqa: E402
from miaudit.training.batched import train_models  # noqa: E402
from miaudit.training.checkpoint import Checkpoint  # noqa: E402

SEEDS = [1, 2, 3, 4]


class Killed(Exception):
    """Stands for the process dying at the end of an epoch (before that step is saved)."""


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 12)).astype(np.float32)
    sparse = (rng.random((240, 64)) < 0.05).astype(np.float32)
    y = rng.integers(0, 3, 240)
    # rows of unequal size (model 0 drawn per record): groups that leave at different steps
    return X, sparse, y, membership_design(240, len(SEEDS), seed=1, bernoulli=1)


def _train(recipe, X, y, design, **kwargs):
    return train_models(recipe, X, y, design, n_classes=3, seeds=SEEDS, **kwargs)


def _interrupted_then_resumed(recipe, X, y, design, path, kill_at: int):
    def die(models, epoch):
        if epoch >= kill_at:
            raise Killed
    first = Checkpoint(path, every=0.0, signature="run")
    with pytest.raises(Killed):
        _train(recipe, X, y, design, on_epoch=die, checkpoint=first)
    assert path.exists()
    again = Checkpoint(path, every=1e9, signature="run")
    return _train(recipe, X, y, design, checkpoint=again), again


@pytest.mark.parametrize("params", [
    {"epochs": 5}, {"epochs": 4, "dropout": 0.3}, {"epochs": 12, "early_stopping": 2},
    {"epochs": 4, "optimizer": "sgd", "weight_decay": 1e-3}, {"epochs": 4, "hidden": ""},
])
@pytest.mark.parametrize("kill_at", [1, 3])
def test_a_resumed_run_trains_the_same_models(data, tmp_path, params, kill_at):
    X, _, y, design = data
    recipe = make_recipe("logistic" if params.get("hidden") == "" else "mlp",
                         {k: v for k, v in params.items() if k != "hidden"})
    whole = _train(recipe, X, y, design)
    resumed, ck = _interrupted_then_resumed(recipe, X, y, design,
                                            tmp_path / "c.safetensors", kill_at)
    assert ck.resumed_epoch is not None and ck.resumed_epoch < kill_at
    assert all(torch.equal(a, b) for a, b in zip(whole.params, resumed.params, strict=True))
    assert whole.info == resumed.info


def test_resume_after_some_models_left_the_batch(data, tmp_path):
    # the smaller models take fewer steps and leave first; the kill comes after that
    X, _, y, design = data
    recipe = make_recipe("mlp", {"epochs": 4, "batch_size": 16})
    whole = _train(recipe, X, y, design)
    path = tmp_path / "c.safetensors"
    steps = []

    def count(models, epoch):
        steps.append(epoch)
    _train(recipe, X, y, design, on_epoch=count, checkpoint=Checkpoint(path, every=0.0))
    resumed = _train(recipe, X, y, design, checkpoint=Checkpoint(path, every=1e9))
    assert all(torch.equal(a, b) for a, b in zip(whole.params, resumed.params, strict=True))


def test_the_sparse_first_layer_resumes_too(data, tmp_path):
    _, X, y, design = data
    recipe = make_recipe("mlp", {"epochs": 4})
    whole = _train(recipe, X, y, design)
    resumed, _ = _interrupted_then_resumed(recipe, X, y, design, tmp_path / "c.safetensors", 2)
    assert all(torch.equal(a, b) for a, b in zip(whole.params, resumed.params, strict=True))


def test_a_checkpoint_of_another_run_is_ignored(data, tmp_path):
    X, _, y, design = data
    recipe = make_recipe("mlp", {"epochs": 3})
    path = tmp_path / "c.safetensors"
    _interrupted_then_resumed(recipe, X, y, design, path, 2)
    other = Checkpoint(path, every=1e9, signature="another run")
    assert other.load("cpu") is None


def test_a_damaged_checkpoint_is_removed_and_the_models_train_from_the_start(data, tmp_path):
    X, _, y, design = data
    recipe = make_recipe("mlp", {"epochs": 3})
    whole = _train(recipe, X, y, design)
    path = tmp_path / "c.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.warns(MiauditWarning, match="damaged"):
        out = _train(recipe, X, y, design, checkpoint=Checkpoint(path, every=1e9))
    assert not path.exists()
    assert all(torch.equal(a, b) for a, b in zip(whole.params, out.params, strict=True))


def test_saves_are_atomic_and_spaced(tmp_path):
    ck = Checkpoint(tmp_path / "sub" / "c.safetensors", every=3600.0, signature="s")
    assert not ck.due()
    ck.save({"w": torch.ones(3)}, {"epoch": 1})
    tensors, state = ck.load("cpu")
    assert torch.equal(tensors["w"], torch.ones(3)) and state == {"epoch": 1}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.safetensors"]  # no temp
    ck.remove()
    assert ck.load("cpu") is None


KILLED_AUDIT = """
import os, signal, sys, miaudit
from miaudit.training import stacked

step, steps = stacked._StackedRun.step, [0]

def dying(self):  # SIGKILL at a fixed step, mid-training: deterministic on any machine
    steps[0] += 1
    if steps[0] == 120:  # of 160 (8 steps per epoch, 20 epochs)
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self)

stacked._StackedRun.step = dying
miaudit.audit(data=sys.argv[1], references=2, model_params={"epochs": 20, "hidden": "64"},
              attacks=["loss", "lira-online"], cache_dir=sys.argv[2], checkpoint_seconds=1e-3)
"""


def test_an_audit_killed_mid_training_resumes_with_identical_figures(tmp_path):
    """SIGKILL during reference training loses at most one checkpoint interval; the
    resumed audit's figures equal an uninterrupted one's."""
    import signal
    import subprocess
    import sys

    import miaudit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 60)).astype(np.float32)
    y = (X[:, :5].sum(1) > 0).astype(int) + 2 * (X[:, 5] > 0)
    data = tmp_path / "d.npz"
    np.savez(data, X=X, y=y)
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", KILLED_AUDIT, str(data), str(cache)],
                          capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert list(cache.glob("checkpoints/*.safetensors")), "no checkpoint before the kill"
    assert not list(cache.rglob("meta.json")), "killed before any model was stored"
    settings = {"references": 2, "model_params": {"epochs": 20, "hidden": "64"},
                "attacks": ["loss", "lira-online"]}
    resumed = miaudit.audit(data=str(data), cache_dir=cache, **settings).summary()
    whole = miaudit.audit(data=str(data), cache=False, **settings).summary()
    training = resumed["target"]["training"]
    assert training["resumed"]["models"] == 4 and training["resumed"]["from_epoch"] >= 10
    assert resumed["attacks"] == whole["attacks"]
    assert not list(cache.glob("checkpoints/*")), "checkpoints left after the models stored"


def test_early_stopping_resumes_after_more_models_left_than_layers(tmp_path):
    # ten models of two sizes: the small ones leave first; the kill comes after that, with
    # more models left (7) than the MLP has parameter tensors (4)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = rng.integers(0, 2, 200)
    design = np.zeros((10, 200), dtype=bool)
    for m in range(10):
        design[m, rng.permutation(200)[: 120 if m < 7 else 60]] = True
    seeds = list(range(10))
    recipe = make_recipe("mlp", {"epochs": 12, "early_stopping": 8, "hidden": "8",
                                 "batch_size": 20})
    whole = train_models(recipe, X, y, design, n_classes=2, seeds=seeds)
    path = tmp_path / "c.safetensors"

    def die(models, epoch):
        if epoch >= 10:
            raise Killed
    with pytest.raises(Killed):
        train_models(recipe, X, y, design, n_classes=2, seeds=seeds, on_epoch=die,
                     checkpoint=Checkpoint(path, every=0.0))
    again = Checkpoint(path, every=1e9)
    out = train_models(recipe, X, y, design, n_classes=2, seeds=seeds, checkpoint=again)
    assert again.resumed_epoch is not None
    assert all(torch.equal(a, b) for a, b in zip(whole.params, out.params, strict=True))
    assert whole.info == out.info


def test_a_checkpoint_that_does_not_fit_is_dropped_with_a_warning(data, tmp_path):
    X, _, y, design = data
    recipe = make_recipe("mlp", {"epochs": 3})
    whole = _train(recipe, X, y, design)
    path = tmp_path / "c.safetensors"
    Checkpoint(path, signature="run").save({"param.0": torch.ones(2)}, {
        "alive": [0], "reported": 0, "groups": [], "stoppers": None})
    with pytest.warns(MiauditWarning, match="does not fit"):
        out = _train(recipe, X, y, design, checkpoint=Checkpoint(path, signature="run"))
    assert not path.exists()
    assert all(torch.equal(a, b) for a, b in zip(whole.params, out.params, strict=True))


def test_a_checkpoint_that_cannot_be_written_only_warns(data, tmp_path):
    X, _, y, design = data
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    recipe = make_recipe("mlp", {"epochs": 2})
    with pytest.warns(MiauditWarning, match="could not be written"):
        out = _train(recipe, X, y, design,
                     checkpoint=Checkpoint(blocked / "c.safetensors", every=0.0))
    assert all(torch.equal(a, b)
               for a, b in zip(_train(recipe, X, y, design).params, out.params, strict=True))


def test_chunks_are_cut_alike_when_a_run_resumes():
    from miaudit.training.executors import _Jobs

    def chunks(todo, parallel=None):
        return _Jobs(10, todo, 4, None, None, None, None, None).split(parallel)
    assert chunks(list(range(10))) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert chunks([4, 5, 6, 7, 8, 9]) == [[4, 5, 6, 7], [8, 9]]  # the first chunk cached
    # with workers the chunk size comes from all the models, not from those left
    assert chunks(list(range(10)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert chunks([6, 7, 8, 9], 4) == [[6, 7, 8], [9]]
