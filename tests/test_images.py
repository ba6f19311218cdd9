"""Image data (JPEG archives, CIFAR-10) and the batched CNN recipe."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DataError, DependencyError

Image = pytest.importorskip("PIL.Image", reason="Pillow not installed (miaudit[images])")

from miaudit.data.images import JPEG_RECORD_PREFIX, load_cifar10_npz  # noqa: E402

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_jpg_q75_bytes.npz"


def _fingerprint(jpeg_bytes: bytes, label: str) -> str:
    text = label.encode("utf-8")
    return hashlib.sha256(JPEG_RECORD_PREFIX + len(text).to_bytes(8, "little") + text
                          + jpeg_bytes).hexdigest()


def _jpeg_npz(path: Path, n: int = 24, *, n_classes: int = 3, size: int = 32,
              with_classes: bool = True) -> tuple[Path, list[bytes]]:
    """A small archive of random JPEG images in the CIFAR-10 layout."""
    rng = np.random.default_rng(0)
    files = []
    for _ in range(n):
        buf = io.BytesIO()
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="JPEG", quality=75)
        files.append(buf.getvalue())
    arrays = {
        "jpeg": np.frombuffer(b"".join(files), dtype=np.uint8),
        "offsets": np.cumsum([0] + [len(f) for f in files]).astype(np.int64),
        "y": (np.arange(n) % n_classes).astype(np.uint8),
        "is_test": np.arange(n) >= n - n // 4,
    }
    if with_classes:
        arrays["classes"] = np.array([f"class{c}" for c in range(n_classes)])
    np.savez(path, **arrays)
    return path, files


# ----------------------------------------------------------------------------- loader


def test_synthetic_archive_loads_through_load_dataset(tmp_path):
    path, files = _jpeg_npz(tmp_path / "tiny.npz")
    ds = load_dataset(path)
    assert ds.X.shape == (24, 3 * 32 * 32) and ds.X.dtype == np.float32
    assert ds.info["format"] == "cifar10-jpeg-npz" and ds.info["image_shape"] == [3, 32, 32]
    assert ds.name == "CIFAR-10 (JPEG-q75)" and ds.classes == ("class0", "class1", "class2")
    assert ds.ids.tolist() == [str(i) for i in range(24)]
    assert ds.fingerprints.tolist() == [_fingerprint(f, f"class{i % 3}")
                                        for i, f in enumerate(files)]
    # channel-first layout, standardised per channel with the loaded images' statistics
    decoded = np.asarray(Image.open(io.BytesIO(files[5])).convert("RGB"), dtype=np.float32)
    mean, std = np.array(ds.info["channel_mean"]), np.array(ds.info["channel_std"])
    expected = ((decoded / 255 - mean) / std).transpose(2, 0, 1).reshape(-1)
    np.testing.assert_allclose(ds.X[5], expected, atol=1e-5)
    per_channel = ds.X.reshape(24, 3, -1)
    np.testing.assert_allclose(per_channel.mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(per_channel.std(axis=(0, 2)), 1, atol=1e-4)


def test_synthetic_subset_split_and_labels_without_class_names(tmp_path):
    path, files = _jpeg_npz(tmp_path / "t.npz", with_classes=False)
    sub = load_cifar10_npz(path, n_records=9, seed=3)
    assert np.bincount(sub.y).tolist() == [3, 3, 3] and sub.classes == ("0", "1", "2")
    i = int(sub.ids[0])
    assert sub.fingerprints[0] == _fingerprint(files[i], str(i % 3))
    test = load_cifar10_npz(path, split="test")
    assert test.ids.tolist() == [str(i) for i in range(18, 24)]
    assert load_cifar10_npz(path, split="train").n_records == 18


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"split": "validation"}, "split must be one of"),
    ({"n_records": 0}, "n_records must be an integer from 1 to 24"),
    ({"n_records": 25}, "n_records must be an integer from 1 to 24"),
    ({"n_records": 7, "split": "test"}, "from 1 to 6"),
    ({"n_records": 8, "seed": -1}, "seed must be an integer >= 0"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    path, _ = _jpeg_npz(tmp_path / "t.npz")
    with pytest.raises(DataError, match=match):
        load_cifar10_npz(path, **kwargs)


def test_malformed_archives_are_reported(tmp_path):
    path, _ = _jpeg_npz(tmp_path / "t.npz")
    raw = dict(np.load(path))
    broken = raw["jpeg"].copy()
    broken[raw["offsets"][2] : raw["offsets"][3]] = 0
    np.savez(tmp_path / "bad.npz", **{**raw, "jpeg": broken})
    with pytest.raises(DataError, match=r"Image 2 in bad\.npz is not a readable JPEG"):
        load_cifar10_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "offsets.npz", **{**raw, "offsets": raw["offsets"][:-1]})
    with pytest.raises(DataError, match=r"'offsets' in offsets\.npz must be 25 integers"):
        load_dataset(tmp_path / "offsets.npz")
    np.savez(tmp_path / "labels.npz", **{**raw, "y": raw["y"] + 5})
    with pytest.raises(DataError, match=r"class codes 0\.\.2"):
        load_cifar10_npz(tmp_path / "labels.npz")


def test_missing_pillow_names_the_extra(tmp_path, monkeypatch):
    path, _ = _jpeg_npz(tmp_path / "t.npz", n=8)
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DependencyError, match=r"pip install 'miaudit\[images\]'"):
        load_cifar10_npz(path)


@pytest.fixture(scope="module")
def cifar():
    """The raw arrays of the shared CIFAR-10 archive; skips when ../shared/data lacks it."""
    if not CIFAR.exists():
        pytest.skip(f"{CIFAR} not found: shared benchmark data absent")
    with np.load(CIFAR) as raw:
        return {k: raw[k] for k in ("jpeg", "offsets", "y", "is_test", "classes")}


@pytest.mark.shared_data
def test_cifar10_stratified_subset(cifar):
    ds = load_cifar10_npz(CIFAR, n_records=500, seed=0)
    assert ds.X.shape == (500, 3072) and ds.info["image_shape"] == [3, 32, 32]
    assert ds.info["subset"]["n_records"] == 500 and ds.n_classes == 10
    assert set(ds.info["class_counts"].values()) == {50}
    index = ds.ids.astype(int)
    assert (np.diff(index) > 0).all() and index.max() < 60000
    np.testing.assert_array_equal(ds.y, cifar["y"][index])
    jpeg, offsets = cifar["jpeg"], cifar["offsets"]
    for row in (0, 499):
        i = index[row]
        label = str(cifar["classes"][cifar["y"][i]])
        assert ds.fingerprints[row] == _fingerprint(jpeg[offsets[i] : offsets[i + 1]].tobytes(),
                                                    label)


@pytest.mark.shared_data
def test_cifar10_fingerprints_stable_and_split(cifar):
    first = load_cifar10_npz(CIFAR, n_records=200, seed=1)
    again = load_cifar10_npz(CIFAR, n_records=200, seed=1)
    assert first.fingerprint == again.fingerprint
    np.testing.assert_array_equal(first.X, again.X)
    other = load_cifar10_npz(CIFAR, n_records=200, seed=2)
    assert set(other.ids) != set(first.ids)
    shared = sorted(set(other.ids) & set(first.ids))
    fp1 = dict(zip(first.ids, first.fingerprints, strict=True))
    fp2 = dict(zip(other.ids, other.fingerprints, strict=True))
    assert [fp1[i] for i in shared] == [fp2[i] for i in shared]
    test = load_cifar10_npz(CIFAR, n_records=100, split="test")
    train = load_cifar10_npz(CIFAR, n_records=100, split="train")
    assert cifar["is_test"][test.ids.astype(int)].all()
    assert not cifar["is_test"][train.ids.astype(int)].any()
    assert test.info["subset"]["n_available"] == 10000


# ----------------------------------------------------------------------------- CNN

torch = pytest.importorskip("torch")
from miaudit.targets.adapters import TorchTarget  # noqa: E402
from miaudit.training import build_module, make_recipe, train  # noqa: E402
from miaudit.training.batched import (  # noqa: E402
    predict_stacked,
    stacked_state_dicts,
    train_batched,
)
from miaudit.training.cnn import AUGMENTATIONS, build_cnn, predict_stacked_cnn  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3072)).astype(np.float32)
    y = rng.integers(0, 4, size=64)
    design = np.zeros((3, 64), dtype=bool)
    for m in range(3):
        design[m, rng.choice(64, 32, replace=False)] = True
    recipe = make_recipe("cnn", ["epochs=2", "batch_size=16", "weight_decay=1e-3"])
    seeds = [3, 4, 5]
    net = train_batched(recipe, X, y, design, n_classes=4, seeds=seeds)
    return recipe, X, y, design, seeds, net


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_batched_cnn_matches_one_by_one(trained, optimizer):
    recipe, X, y, design, seeds, net = trained
    if optimizer == "sgd":
        recipe = make_recipe("cnn", ["epochs=2", "batch_size=16", "hidden=8,16,32",
                                     "optimizer=sgd", "lr=0.05", "activation=tanh"])
        net = train_batched(recipe, X, y, design, n_classes=4, seeds=seeds)
    stacked = predict_stacked(net, X, recipe.activation)
    assert stacked.shape == (3, 64, 4) and stacked.dtype == np.float32
    for m in range(3):
        single = train(recipe, X[design[m]], y[design[m]], n_classes=4, seed=seeds[m])
        np.testing.assert_allclose(stacked[m], TorchTarget(single.module).outputs(X).values,
                                   atol=1e-4)
    assert not np.allclose(stacked[0], stacked[1])


def test_state_dicts_load_into_the_recipe_module(trained):
    recipe, X, _, _, _, net = trained
    stacked = predict_stacked(net, X, recipe.activation)
    for m, state in enumerate(stacked_state_dicts(net)):
        module = build_module(recipe, X.shape[1], 4)
        assert list(state) == list(module.state_dict())
        module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        np.testing.assert_allclose(TorchTarget(module).outputs(X).values, stacked[m], atol=1e-5)


def test_augmented_queries(trained):
    _, X, _, _, _, net = trained
    plain = predict_stacked_cnn(net, X)
    aug = predict_stacked_cnn(net, X, augment="flip-shift", batch_size=20)
    n_var = len(AUGMENTATIONS["flip-shift"])
    assert n_var == 6 and aug.shape == (3, n_var, 64, 4) and aug.dtype == np.float32
    np.testing.assert_allclose(aug[:, 0], plain, atol=1e-5)
    images = X.reshape(64, 3, 32, 32)
    flipped = images[..., ::-1].reshape(64, -1)
    np.testing.assert_allclose(aug[:, 1], predict_stacked_cnn(net, flipped), atol=1e-5)
    padded = np.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    right = padded[:, :, 2:34, 0:32].reshape(64, -1)  # content moved 2 pixels right
    np.testing.assert_allclose(aug[:, 2], predict_stacked_cnn(net, right), atol=1e-5)
    with pytest.raises(ConfigError, match="Unknown augment 'crop'"):
        predict_stacked_cnn(net, X, augment="crop")


def test_cnn_recipe_and_module():
    recipe = make_recipe("cnn")
    assert recipe.hidden == (16, 32, 64, 128) and recipe.activation == "relu"
    module = build_cnn(10)
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    assert shapes["1.weight"] == (16, 3, 3, 3) and shapes["11.weight"] == (128, 1024)
    assert shapes["13.weight"] == (10, 128)
    assert module(torch.zeros(2, 3072)).shape == (2, 10)
    with pytest.raises(ConfigError, match="at least two"):
        make_recipe("cnn", ["hidden=16"])
    with pytest.raises(ConfigError, match="square RGB images"):
        build_module(recipe, 13, 3)
    with pytest.raises(ConfigError, match="divisible by 64"):
        build_cnn(10, hidden=(4, 4, 4, 4, 4, 4, 8))


def test_image_audit_with_references_and_augmented_queries(tmp_path):
    """End to end: a JPEG archive, the cnn recipe, references, flips and shifts."""
    import miaudit

    path, _ = _jpeg_npz(tmp_path / "imgs.npz", n=64, n_classes=2)
    result = miaudit.audit(data=path, n_records=48, model="cnn",
                           model_params={"epochs": 2}, references=3, targets=1,
                           attacks=["loss", "lira-online", "rmia-online"],
                           cache_dir=tmp_path / "cache")
    s = result.summary()
    assert s["data"]["n_records"] == 48
    assert s["target"]["training"]["augmented_queries"] == "flip-shift"
    assert result.signals["variant_logits"].shape == (6, 5, 48, 2)  # 3 -> 4 refs + 2
    again = miaudit.audit(data=path, n_records=48, model="cnn", model_params={"epochs": 2},
                          references=3, targets=1, attacks=["loss", "lira-online"],
                          cache_dir=tmp_path / "cache")
    assert again.summary()["target"]["training"]["cached"] == 6
    np.testing.assert_allclose(again.signals["variant_logits"], result.signals["variant_logits"])
    with pytest.raises(miaudit.errors.ConfigError, match="image recipes"):
        miaudit.audit(data="wine", model="mlp", references=1, augment=True, attacks=["loss"])


def test_n_records_subsets_any_data_stratified():
    from miaudit.data import load_dataset

    ds = load_dataset("digits", n_records=200, seed=1)
    assert ds.n_records == 200
    assert np.bincount(ds.y).min() >= 19  # ~20 per class
    again = load_dataset("digits", n_records=200, seed=1)
    assert list(again.ids) == list(ds.ids)
    with pytest.raises(DataError, match="n_records must be an integer"):
        load_dataset("digits", n_records=2)
