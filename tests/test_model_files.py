"""Model files as targets: ONNX (onnxruntime) and skops files give the same outputs and the
same audit as the estimator in memory; untrusted skops types and pickles are refused
without running anything."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="the model-file tests need onnxruntime "
                    "(pip install 'miaudit[files]')")
pytest.importorskip("skops", reason="the model-file tests need skops (pip install "
                    "'miaudit[files]')")
pytest.importorskip("skl2onnx", reason="the ONNX files are made with skl2onnx (pip install "
                    "skl2onnx)")

import skops.io as sio
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from typer.testing import CliRunner

import miaudit
from miaudit.cli import app
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DataError, OutputError
from miaudit.targets import SklearnTarget
from miaudit.targets.files import OnnxTarget, load_model_file, untrusted_skops_types

#: Set when a Tripwire is rebuilt from a file: the proof that loading ran its code.
TRIPPED: list[str] = []


class Tripwire:
    """A type no one trusts: rebuilding it from a file records that its code ran."""

    def __init__(self):
        self.armed = True

    def __setstate__(self, state):
        TRIPPED.append("__setstate__")
        self.__dict__.update(state)


TRIPWIRE = f"{Tripwire.__module__}.{Tripwire.__qualname__}"


@pytest.fixture(scope="module")
def ds():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def members(ds):
    return np.random.default_rng(0).permutation(ds.n_records) < ds.n_records // 2


@pytest.fixture(scope="module")
def estimators(ds, members):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLP convergence
        return {
            "logistic": LogisticRegression(max_iter=500).fit(ds.X[members], ds.y[members]),
            "mlp": MLPClassifier((32,), max_iter=200, random_state=0).fit(
                ds.X[members], ds.y[members]),
        }


def _onnx(est, X, path, zipmap):
    onx = to_onnx(est, X[:1].astype(np.float32), options={id(est): {"zipmap": zipmap}})
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.mark.parametrize("name", ["logistic", "mlp"])
@pytest.mark.parametrize("zipmap", [True, False])
def test_onnx_probabilities_equal_predict_proba(ds, estimators, tmp_path, name, zipmap):
    est = estimators[name]
    target = load_model_file(_onnx(est, ds.X, tmp_path / "m.onnx", zipmap), classes=ds.classes)
    out = target.outputs(ds.X)
    assert isinstance(target, OnnxTarget) and out.kind == "probs"
    assert target.output_name == ("output_probability" if zipmap else "probabilities")
    np.testing.assert_allclose(out.values, est.predict_proba(ds.X), atol=1e-5)
    # batches give the same rows as one run
    target.batch_size = 100
    np.testing.assert_allclose(target.outputs(ds.X).values, out.values, atol=1e-7)


def test_zipmap_columns_follow_the_labels(ds, estimators, tmp_path):
    """An estimator that never saw some classes: its labels place its columns, the others
    get probability 0, as with the estimator in memory."""
    keep = np.isin(ds.y, [1, 3, 5, 7])
    est = LogisticRegression(max_iter=500).fit(ds.X[keep], ds.y[keep])
    target = load_model_file(_onnx(est, ds.X, tmp_path / "m.onnx", True), classes=ds.classes)
    np.testing.assert_allclose(target.outputs(ds.X).values,
                               SklearnTarget(est, ds.classes).outputs(ds.X).values, atol=1e-5)


@pytest.mark.parametrize("name", ["logistic", "mlp"])
def test_skops_equals_predict_proba(ds, estimators, tmp_path, name):
    """The MLP holds an AdamOptimizer, which skops does not trust by default and miaudit
    does (SAFE_SKOPS_TYPES)."""
    est = estimators[name]
    sio.dump(est, tmp_path / "m.skops")
    target = load_model_file(tmp_path / "m.skops", classes=ds.classes)
    assert isinstance(target, SklearnTarget)
    np.testing.assert_allclose(target.outputs(ds.X).values, est.predict_proba(ds.X), atol=1e-5)


def _torch_onnx(module, path, **kwargs):
    torch = pytest.importorskip("torch")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated
            torch.onnx.export(module, (torch.zeros(5, 64),), str(path), dynamo=False, **kwargs)
    except Exception as exc:  # an exporter that needs onnxscript or a newer opset
        pytest.skip(f"torch.onnx.export does not work here: {type(exc).__name__}: {exc}")
    return path


@pytest.mark.parametrize("named", [True, False])
def test_torch_export_gives_logits(ds, tmp_path, named):
    """Named outputs and a dynamic batch, or torch's defaults (an output named '7', a batch
    fixed at the export's 5 rows, run padded): logits equal to the module's."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                 torch.nn.Linear(32, 10)).eval()
    kwargs = ({"input_names": ["x"], "output_names": ["scores"],
               "dynamic_axes": {"x": {0: "n"}, "scores": {0: "n"}}} if named else {})
    target = load_model_file(_torch_onnx(module, tmp_path / "t.onnx", **kwargs))
    X = ds.X[:103]
    out = target.outputs(X)
    with torch.no_grad():
        expected = module(torch.as_tensor(X)).numpy()
    assert out.kind == "logits" and out.values.shape == (103, 10)
    np.testing.assert_allclose(out.values, expected, atol=1e-5)


def test_a_softmax_output_is_read_as_probabilities(ds, tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 10), torch.nn.Softmax(dim=1)).eval()
    target = load_model_file(_torch_onnx(module, tmp_path / "t.onnx"))
    with torch.no_grad():
        expected = module(torch.as_tensor(ds.X[:20])).numpy()
    out = target.outputs(ds.X[:20])
    assert out.kind == "probs"
    np.testing.assert_allclose(out.values, expected, atol=1e-5)
    # the graph's reading can be overridden
    assert load_model_file(tmp_path / "t.onnx", kind="logits").outputs(ds.X[:3]).kind == "logits"


def _cli(args):
    return CliRunner().invoke(app, ["run", *args, "--no-cache", "--no-registry",
                                    "--format", "json"])


@pytest.mark.parametrize("file", ["onnx-zipmap", "onnx", "skops"])
def test_cli_audit_of_a_file_equals_the_estimator_in_memory(ds, members, estimators, tmp_path,
                                                           file):
    est = estimators["logistic"]
    if file == "skops":
        path = tmp_path / "m.skops"
        sio.dump(est, path)
    else:
        path = _onnx(est, ds.X, tmp_path / "m.onnx", file == "onnx-zipmap")
    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(ds.ids[members].astype(str)))
    res = _cli(["--data", "digits", "--model", str(path), "--members", str(ids),
                "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "exposure probabilities" in res.stderr
    there = json.loads(res.stdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # correctness is near constant: said in both
        here = miaudit.audit(data=ds, model=est, members=members,
                             exposure="probabilities").summary()
    assert there["target"]["n_members"] == members.sum() == here["target"]["n_members"]
    assert set(there["attacks"]) == set(here["attacks"])
    for name, entry in here["attacks"].items():
        # float32 in the graph moves probabilities by ~1e-7; the AUCs were equal to the last
        # digit when written; 1e-5 lets a few near-tied pairs swap
        assert abs(there["attacks"][name]["auc"] - entry["auc"]) < 1e-5, name


def test_references_for_a_model_file_train_from_the_default_recipe(ds, members, estimators,
                                                                   tmp_path):
    pytest.importorskip("torch")
    path = _onnx(estimators["logistic"], ds.X, tmp_path / "m.onnx", False)
    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(ds.ids[members].astype(str)))
    res = _cli(["--data", "digits", "--model", str(path), "--members", str(ids),
                "--references", "2", "--reference-mode", "offline", "-p", "epochs=1",
                "-p", "hidden=8", "--attacks", "loss,lira-offline",
                "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    recipe = summary["target"]["reference_recipe"]
    assert recipe["name"] == "mlp" and recipe["hidden"] == [8] and recipe["epochs"] == 1
    assert set(summary["attacks"]) == {"loss", "lira-offline"}
    assert summary["target"]["model"] == "m.onnx"  # the file, not the wrapper's type


def test_untrusted_skops_type_is_refused_and_never_run(ds, estimators, tmp_path):
    est = LogisticRegression(max_iter=500).fit(ds.X[:300], ds.y[:300])
    est.tripwire_ = Tripwire()
    path = tmp_path / "m.skops"
    sio.dump(est, path)
    TRIPPED.clear()
    with pytest.raises(ConfigError) as info:
        load_model_file(path, classes=ds.classes)
    message = str(info.value)
    assert TRIPWIRE in message and f"--trust {TRIPWIRE}" in message and "\n" not in message
    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(ds.ids[:300].astype(str)))
    res = _cli(["--data", "digits", "--model", str(path), "--members", str(ids)])
    assert res.exit_code == 1 and TRIPWIRE in res.output and "Traceback" not in res.output
    assert untrusted_skops_types(path) == [TRIPWIRE]
    assert untrusted_skops_types(path, (TRIPWIRE,)) == []
    assert TRIPPED == []  # nothing in the file was built
    # the control: trusting the type loads it, and its code runs (so the test can see it)
    target = load_model_file(path, classes=ds.classes, trusted=[TRIPWIRE])
    assert TRIPPED == ["__setstate__"]
    np.testing.assert_allclose(target.outputs(ds.X).values, est.predict_proba(ds.X), atol=1e-5)


@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".joblib"])
def test_pickles_are_refused_unopened(ds, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps(Tripwire()))
    TRIPPED.clear()
    with pytest.raises(ConfigError, match=r"skops.*ONNX"):
        load_model_file(path)
    ids = tmp_path / "members.txt"
    ids.write_text("0\n1\n")
    res = _cli(["--data", "digits", "--model", str(path), "--members", str(ids)])
    assert res.exit_code == 1 and "pickle" in res.output and "Traceback" not in res.output
    assert TRIPPED == []


def test_wrong_feature_width_is_a_clear_error(ds, estimators, tmp_path):
    path = _onnx(estimators["logistic"], ds.X, tmp_path / "m.onnx", True)
    wine = load_dataset("wine")
    with pytest.raises(DataError, match=r"shape \(64,\).*\(13,\)"):
        load_model_file(path).outputs(wine.X)
    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(wine.ids[::2].astype(str)))
    res = _cli(["--data", "wine", "--model", str(path), "--members", str(ids)])
    assert res.exit_code == 1 and "expects records of shape (64,)" in res.output


def test_an_output_that_is_not_records_by_classes_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    graph = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
                              "sum", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "sum.onnx")
    with pytest.raises(OutputError, match="expected \\(records, classes\\)"):
        load_model_file(tmp_path / "sum.onnx")


def test_a_graph_that_fails_on_the_data_is_a_clear_error(tmp_path):
    """A graph leaving the width open: the right width gives logits (a MatMul, no softmax);
    a wrong one is onnxruntime's complaint in one line."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                              [x], [y], [numpy_helper.from_array(weights, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "linear.onnx")
    target = load_model_file(tmp_path / "linear.onnx")
    X = np.random.default_rng(0).normal(size=(7, 4))
    out = target.outputs(X)
    assert out.kind == "logits"
    np.testing.assert_allclose(out.values, X.astype(np.float32) @ weights, atol=1e-5)
    with pytest.raises(DataError, match="onnxruntime could not run") as info:
        target.outputs(np.zeros((7, 5)))
    assert "\n" not in str(info.value)


def test_cli_refusals_are_one_line(ds, estimators, tmp_path):
    path = _onnx(estimators["logistic"], ds.X, tmp_path / "m.onnx", False)
    ids = tmp_path / "members.txt"
    ids.write_text("0\n1\n")
    (tmp_path / "junk.skops").write_bytes(b"not a zip file")
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    cases = [
        (["--data", "digits", "--model", str(tmp_path / "junk.skops"), "--members", str(ids)],
         "not a readable skops file"),
        (["--data", "digits", "--model", str(tmp_path / "junk.onnx"), "--members", str(ids)],
         "Cannot load junk.onnx"),
        (["--data", "digits", "--model", str(path)], "--members"),
        (["--data", "digits", "--model", str(path), "--members", str(ids), "--trust", "a.B"],
         ".skops"),
        (["--data", "digits", "--model", str(tmp_path / "missing.onnx"), "--members",
          str(ids)], "not found"),
        (["--data", "digits", "--model", str(path), "--members", str(ids), "-p", "epochs=2"],
         "--references"),
        (["--data", "digits", "--members", str(ids)], "model file"),
        (["--data", "digits", "--trust", "a.B"], ".skops"),
    ]
    for args, expected in cases:
        res = _cli(args)
        assert res.exit_code == 1, (args, res.output)
        assert expected in res.output and "Traceback" not in res.output, (args, res.output)
