"""MLflow models as targets and audits recorded back into MLflow, against a real local
tracking store (SQLite in a temporary folder) and a real ``mlflow models serve`` process:
the same audit by ``models:/``, ``runs:/``, a folder and in memory; pyfunc answers read as
logits, probabilities or labels; one-line errors; the metrics, params, artifacts and tags
``--mlflow`` writes, read back with MlflowClient."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("mlflow", reason="the MLflow tests need mlflow (pip install "
                    "'miaudit[mlflow]')")

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import miaudit
from miaudit.audits.verdict import LEVEL_NAMES
from miaudit.cli import app
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, DataError, DependencyError, OutputError
from miaudit.registry.mlflow import audit_metrics, log_audit
from miaudit.targets import CallableTarget, LabelTarget, SklearnTarget
from miaudit.targets.mlflow import PyfuncTarget, load_mlflow_model, short_name

#: Audits through the real MLflow server equal the in-process ones to this: the records and
#: probabilities travel as JSON numbers printed to round-trip.
HTTP_TOL = 1e-9
START_TIMEOUT = 60.0


class Toy(mlflow.pyfunc.PythonModel):
    """A pyfunc model over a logistic regression's weights that answers in one of several
    forms; it reads its columns by name, so wrong column names fail."""

    def __init__(self, coef, intercept, columns, classes, answer):
        self.coef, self.intercept, self.columns = coef, intercept, list(columns)
        self.classes, self.answer = list(classes), answer

    def predict(self, context, model_input, params=None):
        return toy_answer(self, model_input[self.columns].to_numpy())


def toy_answer(toy, X):
    z = X @ toy.coef.T + toy.intercept
    logits = np.hstack([np.zeros_like(z), z])  # binary: softmax gives predict_proba
    if toy.answer == "logits":
        return logits
    if toy.answer == "frame":  # columns in reverse order, named by class: matched by label
        return pd.DataFrame(softmax(logits, axis=1)[:, ::-1], columns=toy.classes[::-1])
    if toy.answer == "labels":
        return np.array(toy.classes)[logits.argmax(axis=1)]
    return np.array([["yes", "no"]] * len(X))  # "text": unreadable


@pytest.fixture(scope="module")
def ds():
    return load_dataset("breast_cancer")  # 284 non-members: TPR at FPR 0.01 is measured


@pytest.fixture(scope="module")
def members(ds):
    return np.random.default_rng(0).permutation(ds.n_records) < ds.n_records // 2


@pytest.fixture(scope="module")
def clf(ds, members):
    return LogisticRegression(max_iter=1000).fit(ds.X[members], ds.y[members])


@pytest.fixture(scope="module")
def store(tmp_path_factory, ds, clf):
    """A SQLite tracking store with the estimator registered as ``bc`` version 1 (alias
    ``champion``; pyfunc predicts probabilities), a copy of it as a plain folder, and the
    pyfunc models ``logits``, ``frame``, ``labels`` and ``text`` logged in one run."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    frame = pd.DataFrame(ds.X[:5], columns=list(ds.feature_names))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        mp.chdir(root)
        client = MlflowClient(uri)
        experiment = client.create_experiment("models",
                                              artifact_location=(root / "art").as_uri())
        with warnings.catch_warnings(), mlflow.start_run(experiment_id=experiment) as run:
            warnings.simplefilter("ignore")
            # pip_requirements given: inferring them loads each model in a subprocess (~10 s)
            mlflow.sklearn.log_model(
                clf, name="model", registered_model_name="bc", pyfunc_predict_fn="predict_proba",
                signature=infer_signature(frame, clf.predict_proba(ds.X[:5])),
                pip_requirements=[])
            for answer in ("logits", "frame", "labels", "text"):
                mlflow.pyfunc.log_model(
                    name=answer, signature=infer_signature(frame), pip_requirements=[],
                    python_model=Toy(clf.coef_, clf.intercept_, ds.feature_names,
                                     ds.classes, answer))
        client.set_registered_model_alias("bc", "champion", "1")
        folder = mlflow.artifacts.download_artifacts("models:/bc/1", dst_path=str(root / "dl"))
    return SimpleNamespace(uri=uri, root=root, run_id=run.info.run_id, folder=folder)


@pytest.fixture(autouse=True)
def _tracking(store, monkeypatch):
    """Every test talks to the temporary store, from its folder (never ~/mlruns)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.chdir(store.root)


@pytest.fixture(scope="module")
def ids_file(tmp_path_factory, ds, members):
    path = tmp_path_factory.mktemp("ids") / "members.txt"
    path.write_text("\n".join(ds.ids[members].astype(str)))
    return path


@pytest.fixture(scope="module")
def in_memory(ds, members, clf):
    """The summary of the audit of the estimator in memory."""
    return _audit(ds, clf, members, "probabilities")


def _audit(ds, model, members, exposure):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # correctness near constant: said in both
        return miaudit.audit(data=ds, model=model, members=members,
                             exposure=exposure).summary()


def _cli(*args):
    return CliRunner().invoke(app, ["run", *args, "--no-cache", "--no-registry",
                                    "--format", "json"])


def _numbers(value):
    """The numbers of a summary figure (a number, an interval, a dict by FPR), None as nan."""
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _numbers(value[k])]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _numbers(v)]
    return [np.nan if value is None else float(value)]


def _same_figures(there, here, tol=0.0):
    """Every attack's AUC, TPRs at the FPR levels, their intervals and advantage agree
    (exactly, or to ``tol``), and so does the verdict."""
    assert set(there["attacks"]) == set(here["attacks"])
    for name, entry in here["attacks"].items():
        for key in ("auc", "auc_ci", "tpr_at_fpr", "tpr_at_fpr_ci", "advantage"):
            got, want = _numbers(there["attacks"][name][key]), _numbers(entry[key])
            np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=f"{name} {key}")
    assert there["verdict"]["level"] == here["verdict"]["level"]


# ------------------------------------------------------------------ loading


@pytest.mark.parametrize("how", ["models:/bc/1", "models:/bc@champion", "runs", "folder"])
def test_cli_audit_by_uri_equals_the_estimator_in_memory(ds, members, store, ids_file,
                                                         in_memory, tmp_path, how):
    uri = {"runs": f"runs:/{store.run_id}/model", "folder": store.folder}.get(how, how)
    res = _cli("--data", "breast_cancer", "--model", uri, "--members", str(ids_file),
               "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    assert "exposure probabilities: predict_proba of its sklearn flavour" in res.stderr
    there = json.loads(res.stdout)
    assert there["target"]["model"] == uri
    assert there["target"]["n_members"] == members.sum()
    # the same outputs to the last bit, so the same figures
    assert there["target"]["outputs_sha256"] == in_memory["target"]["outputs_sha256"]
    _same_figures(there, in_memory)


def test_tracking_uri_option_names_the_store(ids_file, in_memory, store, tmp_path,
                                            monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/empty.db")
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    res = _cli("--data", "breast_cancer", "--model", "models:/bc@champion", "--members",
               str(ids_file), "--mlflow-tracking-uri", store.uri, "--out", str(tmp_path / "r"))
    assert res.exit_code == 0, res.output
    _same_figures(json.loads(res.stdout), in_memory)
    # the store was named for the load only: the process's environment is as it was
    assert os.environ["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path}/empty.db"
    assert "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR" not in os.environ


def test_metric_names_are_ones_mlflow_accepts():
    from mlflow.utils.validation import _validate_metric_name

    from miaudit.attacks import ATTACKS
    from miaudit.attacks.lm import LM_ATTACKS
    from miaudit.registry.mlflow import audit_metrics

    entry = {"auc": 0.6, "auc_ci": [0.5, 0.7], "tpr_at_fpr": {"0.01": 0.02},
             "tpr_at_fpr_ci": {"0.01": [0.0, 0.1]}}
    names = sorted({*ATTACKS, *LM_ATTACKS})
    metrics = audit_metrics({"verdict": {"level": "low", "strongest_attack": "min-k++"},
                             "attacks": dict.fromkeys(names, entry)})
    assert metrics["attacks/min-kplusplus/auc"] == metrics["auc"] == 0.6
    assert len(metrics) == 6 * len(names) + 6 + 1  # every attack, the strongest, the level
    for name in metrics:
        _validate_metric_name(name)  # raises for a name MLflow refuses


def test_credentials_are_never_printed_or_tagged():
    from miaudit.registry.mlflow import audit_tags
    from miaudit.targets.mlflow import shown_uri

    assert shown_uri("postgresql://u:pw-1@db/mlflow") == "postgresql://u:***@db/mlflow"
    assert shown_uri("databricks") == "databricks"
    tags = audit_tags({"verdict": {"level": "none"}}, Path("run"),
                      "https://user:pw-2@serve.example/invocations?api_key=k-3")
    assert tags["miaudit.model_uri"] == "https://serve.example/invocations"


def test_python_api_gives_the_estimators_probabilities(ds, clf):
    target = load_mlflow_model("models:/bc/1", classes=ds.classes)
    assert isinstance(target, SklearnTarget) and target.name == "models:/bc/1"
    np.testing.assert_array_equal(target.outputs(ds.X).values,
                                  SklearnTarget(clf, ds.classes).outputs(ds.X).values)


def test_pyfunc_logits_through_the_cli(ds, members, clf, store, ids_file, tmp_path):
    uri = f"runs:/{store.run_id}/logits"
    res = _cli("--data", "breast_cancer", "--model", uri, "--members", str(ids_file),
               "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    assert "exposure logits: its pyfunc predict returns 2 numbers per record" in res.stderr
    toy = Toy(clf.coef_, clf.intercept_, ds.feature_names, ds.classes, "logits")
    here = _audit(ds, CallableTarget(lambda X: toy_answer(toy, X), "logits"), members,
                  "logits")
    _same_figures(json.loads(res.stdout), here)


def test_pyfunc_probabilities_by_column_name_and_labels(ds, members, clf, store):
    frame = load_mlflow_model(f"runs:/{store.run_id}/frame", classes=ds.classes)
    out = frame.outputs(ds.X)
    assert isinstance(frame, PyfuncTarget) and frame.kind == "probs"
    toy = Toy(clf.coef_, clf.intercept_, ds.feature_names, ds.classes, "logits")
    # the columns by class name, not in the answer's order (to float32 rounding: MLflow's
    # schema enforcement decides the precision the model computes in)
    np.testing.assert_allclose(out.values, softmax(toy_answer(toy, ds.X), axis=1), rtol=0,
                               atol=1e-6)
    labels = load_mlflow_model(f"runs:/{store.run_id}/labels", classes=ds.classes)
    assert labels.outputs(ds.X[:3]).kind == "probs" and labels.kind == "label"
    here = _audit(ds, LabelTarget(clf.predict, 2, ds.classes), members, "label")
    there = _audit(ds, labels, members, "label")
    _same_figures(there, here)


def test_a_pyfunc_is_fed_its_signature_columns(ds, store):
    """The toy selects its columns by the signature's names: wrong features fail in one
    line, naming the signature."""
    target = load_mlflow_model(f"runs:/{store.run_id}/logits", classes=ds.classes)
    with pytest.raises(DataError, match=r"input signature has 30 columns \(mean radius"):
        target.outputs(ds.X[:, :10])


@pytest.mark.parametrize("uri, error, match", [
    ("models:/nope/1", ConfigError, r"Cannot fetch the MLflow model models:/nope/1 from "
                                    r"sqlite:"),
    ("models:/bc/7", ConfigError, r"Cannot fetch the MLflow model models:/bc/7"),
    ("runs:/0123456789abcdef0123456789abcdef/model", ConfigError,
     r"Cannot fetch the MLflow model runs:/0123"),
    ("not-a-model", ConfigError, r"'not-a-model' is not an MLflow model"),
    ("keras", ConfigError, r"has the flavour\(s\) keras; miaudit reads the sklearn or "
                           r"python_function"),
    ("text", OutputError, r"returned one value per record|that are not numbers"),
])
def test_bad_uris_and_answers_give_one_line_errors(ds, store, tmp_path, uri, error, match):
    if uri == "keras":
        (tmp_path / "MLmodel").write_text("flavors:\n  keras:\n    keras_version: 3.0\n")
        uri = str(tmp_path)
    elif uri == "text":
        uri = f"runs:/{store.run_id}/text"
    with pytest.raises(error, match=match) as caught:
        load_mlflow_model(uri, classes=ds.classes).outputs(ds.X[:5])
    assert "\n" not in str(caught.value)


def test_cli_error_is_one_line(ids_file, tmp_path):
    res = _cli("--data", "breast_cancer", "--model", "models:/bc/9", "--members",
               str(ids_file), "--out", str(tmp_path / "run"))
    assert res.exit_code == 1
    assert res.stderr.startswith("error: Cannot fetch the MLflow model models:/bc/9")
    assert res.stderr.count("\n") == 1 and not (tmp_path / "run").exists()


def test_without_mlflow_the_error_says_what_to_install(monkeypatch, ds):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(DependencyError, match=r"pip install 'miaudit\[mlflow\]'"):
        load_mlflow_model("models:/bc/1", classes=ds.classes)


def test_short_names():
    assert short_name("models:/bc/1") == "bc-1"
    assert short_name("runs:/abc/model") == "abc-model"


# ------------------------------------------------------------------ recording


def test_run_with_mlflow_records_metrics_params_artifacts_and_tags(store, ids_file, tmp_path):
    out = tmp_path / "run"
    res = _cli("--data", "breast_cancer", "--model", "models:/bc/1", "--members",
               str(ids_file), "--out", str(out), "--mlflow", "--mlflow-experiment", "audits")
    assert res.exit_code == 0, res.output
    assert "tagged models:/bc/1" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    client = MlflowClient(store.uri)
    version = client.get_model_version("bc", "1")
    run_id = version.tags["miaudit.audit_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "audits"
    # metrics: each attack's and the strongest's, with intervals, and the verdict level
    metrics, verdict = run.data.metrics, summary["verdict"]
    best = summary["attacks"][verdict["strongest_attack"]]
    assert metrics["verdict_level"] == LEVEL_NAMES.index(verdict["level"])
    assert metrics["auc"] == best["auc"]
    assert (metrics["auc_low"], metrics["auc_high"]) == tuple(best["auc_ci"])
    assert metrics["tpr_at_fpr_0.01"] == best["tpr_at_fpr"]["0.01"]
    assert (metrics["tpr_at_fpr_0.01_low"], metrics["tpr_at_fpr_0.01_high"]) == \
        tuple(best["tpr_at_fpr_ci"]["0.01"])
    assert "tpr_at_fpr_0.001" not in metrics  # not measurable on 284 non-members
    for name, entry in summary["attacks"].items():
        assert metrics[f"attacks/{name}/auc"] == entry["auc"], name
        assert metrics[f"attacks/{name}/tpr_at_fpr_0.01"] == entry["tpr_at_fpr"]["0.01"]
    assert metrics == audit_metrics(summary)
    # params, tags, artifacts
    assert run.data.params == {
        "data": "breast_cancer", "data_fingerprint": summary["data"]["fingerprint"],
        "model": "models:/bc/1", "n_members": str(summary["target"]["n_members"]),
        "n_non_members": str(summary["target"]["n_non_members"]),
        "exposure": "probabilities", "attacks": ",".join(summary["attacks"]), "seed": "0",
        "miaudit_version": miaudit.__version__}
    tags = run.data.tags
    assert tags["miaudit.model_uri"] == "models:/bc/1"
    assert tags["miaudit.verdict"] == verdict["level"]
    assert tags["miaudit.run_dir"] == str(out.resolve())
    assert tags["mlflow.note.content"] == verdict["sentence"]
    names = {Path(a.path).name for a in client.list_artifacts(run_id, "miaudit")}
    assert names == {"summary.json", "report.html"}
    logged = client.download_artifacts(run_id, "miaudit/summary.json", str(tmp_path))
    assert Path(logged).read_bytes() == (out / "summary.json").read_bytes()
    # the model version carries the verdict
    assert version.tags["miaudit.verdict"] == verdict["level"]
    assert version.tags["miaudit.strongest_attack"] == verdict["strongest_attack"]
    assert float(version.tags["miaudit.auc"]) == best["auc"]
    assert version.tags["miaudit.exposure"] == "probabilities"


def test_an_endpoint_is_tagged_without_its_credentials():
    from miaudit.cli.targets import audited_uri

    assert audited_uri("mlp", "https://u:pw-1@h.example/v1?api_key=k-2&m=a", None) == (
        "https://h.example/v1?m=a")
    assert audited_uri("models:/bc/1", None, None) == "models:/bc/1"
    assert audited_uri("mlp", None, None) is None  # a recipe trained here


def test_mlflow_log_command_logs_a_saved_run(ds, members, clf, store, tmp_path, monkeypatch):
    saved = miaudit.audit(data=ds, model=clf, members=members, attacks=["loss"],
                          exposure="probabilities").save(tmp_path / "run")
    cli = app  # miaudit's own command line
    with pytest.raises(ConfigError, match=r"Cannot open the MLflow tracking store file:.*"
                                          r"MlflowException: The filesystem tracking backend"):
        log_audit(saved, tracking_uri=(tmp_path / "mlruns").as_uri())  # refused by MLflow 3
    # the explicit store wins over the environment's (which would raise)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    tracking = store.uri
    res = CliRunner().invoke(cli, ["mlflow-log", str(saved), "--model-uri", "models:/bc/9",
                                   "--mlflow-tracking-uri", store.uri])
    assert res.exit_code == 1 and "has no models:/bc/9" in res.stderr
    assert MlflowClient(store.uri).get_experiment_by_name("miaudit") is None  # nothing logged
    record = log_audit(saved, tracking_uri=tracking, experiment="later")
    assert record.tracking_uri == tracking and record.model_version is None
    run = MlflowClient(tracking).get_run(record.run_id)
    assert run.data.metrics["attacks/loss/auc"] == run.data.metrics["auc"]
    assert "miaudit.model_uri" not in run.data.tags
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    res = CliRunner().invoke(cli, ["mlflow-log", str(saved), "--model-uri",
                                   "models:/bc@champion", "--mlflow-experiment", "later"])
    assert res.exit_code == 0, res.output
    run_id = res.stdout.strip()
    assert MlflowClient(store.uri).get_model_version("bc", "1").tags[
        "miaudit.audit_run_id"] == run_id
    with pytest.raises(ConfigError, match="is not a miaudit run folder"):
        log_audit(tmp_path)


# ------------------------------------------------------------------ a real MLflow server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(store, tmp_path_factory):
    """``mlflow models serve`` of the registered estimator's folder, on 127.0.0.1."""
    import httpx

    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    bin_dir = Path(sys.executable).parent  # mlflow, and the uvicorn it runs by name
    command = [str(bin_dir / "mlflow"), "models", "serve", "-m", store.folder,
               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.uri,
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "wb") as out:  # a file, not a pipe nobody reads
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=store.root, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.skip(f"mlflow models serve exited (code {proc.returncode}): "
                            f"{log.read_text(errors='replace')[-800:]}")
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.skip(f"mlflow models serve did not answer /ping within "
                            f"{START_TIMEOUT:.0f} s: {log.read_text(errors='replace')[-800:]}")
            time.sleep(0.2)
        yield base
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and the uvicorn it started (its own process group, made for it)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_audit_through_a_real_mlflow_server_equals_in_process(served, ids_file, in_memory,
                                                              tmp_path):
    pytest.importorskip("httpx")
    res = _cli("--data", "breast_cancer", "--target", served, "--protocol", "mlflow",
               "--members", str(ids_file), "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    assert "exposure detected probabilities" in res.stderr
    _same_figures(json.loads(res.stdout), in_memory, tol=HTTP_TOL)
