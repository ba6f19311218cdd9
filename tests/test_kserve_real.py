"""The kserve-v2 preset against a real KServe Python model server (``kserve.ModelServer``,
Open Inference Protocol v2 over REST), started and stopped here: the same probabilities,
logits and labels as the estimator in memory, the same audit through ``miaudit run
--protocol kserve-v2`` as in-process, the input read from the model metadata, an output
chosen by name.

KServe lives in its own virtual environment, ``.venv-kserve`` (``sh scripts/kserve-venv.sh``,
run by ``make test``), because installing it into .venv would downgrade pandas and
protobuf; the server is tests/servers/kserve_model.py run by that environment's python. The
tests skip, with the reason, when that environment is missing or the server does not start.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("sklearn")

import httpx
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import miaudit
from miaudit.cli import app
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, OutputError
from miaudit.targets import CallableTarget
from miaudit.targets.http import HTTPTarget

ROOT = Path(__file__).resolve().parents[1]
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
SERVER = Path(__file__).resolve().parent / "servers" / "kserve_model.py"
START_TIMEOUT = 60.0

#: The attack scores through KServe equal the in-process ones to this relative tolerance.
#: FP64 tensors travel as JSON numbers that round-trip (json out, orjson back), and the
#: server computes the logits and softmax as scikit-learn does, with the same numpy: the
#: scores came out identical when written; the margin allows another BLAS in .venv-kserve.
RTOL = 1e-9

pytestmark = pytest.mark.skipif(
    not KSERVE_PYTHON.exists(),
    reason="no .venv-kserve: run 'sh scripts/kserve-venv.sh' (make test does) to install "
           "the KServe model server these tests start")


@pytest.fixture(scope="module")
def ds():
    return load_dataset("wine")


@pytest.fixture(scope="module")
def members(ds):
    return np.arange(ds.n_records) % 2 == 0


@pytest.fixture(scope="module")
def clf(ds, members):
    # fitted on float64 features, so float64 weights: predict_proba computes in float64 (on
    # float32 records too) and the server is sent and answers FP64 tensors; fitted on the
    # float32 records it would compute in float32, the server likewise (FP32 tensors)
    X = ds.X[members].astype(np.float64)
    return LogisticRegression(max_iter=1000).fit(X, ds.y[members])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(log: Path, n: int = 15) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(lines[-n:])


def _wait_ready(proc: subprocess.Popen, base: str, log: Path) -> None:
    """Until the server says the model is ready; skips when it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "No module named 'kserve'" in log.read_text(errors="replace"):
                pytest.skip(f"{KSERVE_PYTHON} cannot import kserve: run "
                            "'sh scripts/kserve-venv.sh'")
            pytest.skip(f"the KServe model server exited (code {proc.returncode}):\n"
                        f"{_tail(log)}")
        try:
            ready = httpx.get(f"{base}/v2/models/wine/ready", timeout=2, trust_env=False)
            if ready.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.skip(f"the KServe model server was not ready within {START_TIMEOUT:.0f} s:\n"
                f"{_tail(log)}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, clf):
    """The base URL ``http://127.0.0.1:PORT`` of a KServe server of ``clf``'s weights,
    serving ``wine`` (with an input signature) and ``wine-plain`` (without)."""
    folder = tmp_path_factory.mktemp("kserve")
    weights = folder / "wine.npz"
    np.savez(weights, coef=clf.coef_, intercept=clf.intercept_)
    port = _free_port()
    log = folder / "server.log"
    with open(log, "wb") as out:  # a file, not a pipe nobody reads: its logs cannot block it
        proc = subprocess.Popen([str(KSERVE_PYTHON), str(SERVER), str(weights), "--port",
                                 str(port), "--name", "wine"], stdout=out,
                                stderr=subprocess.STDOUT, cwd=folder)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(proc, base, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ outputs


def test_probabilities_equal_predict_proba_and_the_input_comes_from_the_metadata(
        ds, clf, server):
    with HTTPTarget(f"{server}/v2/models/wine", protocol="kserve-v2",
                    batch_size=64) as target:
        out = target.outputs(ds.X)
    assert out.kind == "probs"
    np.testing.assert_allclose(out.values, clf.predict_proba(ds.X), rtol=1e-12, atol=1e-15)
    # (a JSON body is sent as application/json: without it KServe reads the body as the
    # binary-tensor extension and refuses it)
    note = target.protocol_note
    assert "the input 'features' (FP64, from the model metadata)" in note, note
    assert "the output 'probabilities'" in note and "label, probabilities, logits" in note
    assert target.queries == ds.n_records and target.requests == 3  # 64 + 64 + 50 rows


def test_an_output_chosen_by_name(ds, clf, server):
    X = ds.X[:40]
    url = f"{server}/v2/models/wine/infer"
    with HTTPTarget(url, protocol="kserve-v2", output="logits") as target:
        out = target.outputs(X)
    assert out.kind == "logits"
    np.testing.assert_allclose(out.values, clf.decision_function(X), rtol=1e-12, atol=1e-12)
    assert "the output 'logits' (named by the output setting" in target.protocol_note
    with HTTPTarget(url, protocol="kserve-v2", output="label", n_classes=3) as target:
        np.testing.assert_array_equal(target.labels(X), clf.predict(X))
    assert target.answer_form == "label"
    with HTTPTarget(url, protocol="kserve-v2", output="scores", retries=0) as target, \
            pytest.raises(OutputError, match=r"no output 'scores' \(its outputs: \['label', "
                                             r"'probabilities', 'logits'\]\)"):
        target.outputs(X)


def test_without_an_input_signature_fp32_rounds_only_the_features(ds, clf, server):
    # KServe's default metadata lists no inputs: the preset sends 'input-0' as FP32
    rng = np.random.default_rng(0)
    X = ds.X[:50].astype(np.float64) + rng.normal(0, 1e-3, (50, ds.X.shape[1]))
    with HTTPTarget(f"{server}/v2/models/wine-plain", protocol="kserve-v2") as target:
        out = target.outputs(X)
    assert "the input 'input-0' (FP32; the metadata names no input)" in target.protocol_note
    # the server computes in float64 on the float32-rounded features ...
    np.testing.assert_allclose(out.values, clf.predict_proba(X.astype(np.float32)),
                               rtol=1e-12, atol=1e-15)
    # ... which moves the probabilities by ~1e-7 from those of the float64 features
    assert 0 < np.abs(out.values - clf.predict_proba(X)).max() < 1e-5


def test_refusals_of_the_real_server_are_one_clear_line(ds, server):
    X = ds.X[:3]
    for url, kwargs, match in [
            ("nope", {}, r"HTTP 404 Not Found: Model with name nope does not exist\. \(check "
                         "the URL"),
            ("wine", {"input_name": "x"}, r"HTTP 400 Bad Request: unexpected input 'x'")]:
        with HTTPTarget(f"{server}/v2/models/{url}", protocol="kserve-v2", retries=0,
                        **kwargs) as target, pytest.raises(ConfigError, match=match) as info:
            target.outputs(X)
        assert "\n" not in str(info.value)


def test_records_of_another_width_are_refused_before_sending(ds, server):
    # the metadata's shape [-1, 13] says how many features a record has
    with HTTPTarget(f"{server}/v2/models/wine", protocol="kserve-v2", retries=0) as target, \
            pytest.raises(ConfigError, match=r"says its input 'features' takes 13 features "
                                             r"per record; the data has 5"):
        target.outputs(ds.X[:3, :5])
    assert target.queries == 0


# ------------------------------------------------------------------ the audit


def _in_process(ds, clf, members, exposure="probabilities"):
    # the estimator itself, or (logits) its decision_function, which scikit-learn's adapter
    # does not release
    model = clf if exposure != "logits" else CallableTarget(clf.decision_function, "logits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # near-constant correctness: said in both
        return miaudit.audit(data=ds, model=model, members=members, exposure=exposure)


def test_audit_through_kserve_equals_in_process(ds, clf, members, server):
    here = _in_process(ds, clf, members)
    with HTTPTarget(f"{server}/v2/models/wine", protocol="kserve-v2",
                    batch_size=50) as target, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        there = miaudit.audit(data=ds, model=target, members=members,
                              exposure="probabilities")
    a, b = here.summary()["attacks"], there.summary()["attacks"]
    assert a.keys() == b.keys() and len(a) >= 3
    for name in a:
        assert abs(a[name]["auc"] - b[name]["auc"]) <= 1e-12, name
        np.testing.assert_allclose(there.scores[name], here.scores[name], rtol=RTOL,
                                   atol=1e-12, err_msg=name)


@pytest.mark.parametrize("output, exposure", [(None, "probabilities"), ("logits", "logits")])
def test_cli_run_against_kserve_equals_in_process(tmp_path, ds, clf, members, server, output,
                                                  exposure):
    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(ds.ids[members].astype(str)))
    args = ["run", "--target", f"{server}/v2/models/wine", "--protocol", "kserve-v2",
            "--data", "wine", "--members", str(ids), "--out", str(tmp_path / "run"),
            "--no-cache", "--no-registry", "--format", "json"]
    if output:
        args += ["--protocol-output", output]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    said = " ".join(res.stderr.split())  # the console wraps lines
    assert f"exposure detected {exposure}: the endpoint returns" in said, said
    assert "kserve-v2: the input 'features' (FP64, from the model metadata)" in said
    assert f"the output '{output or 'probabilities'}'" in said
    there = json.loads(res.stdout)
    assert there["exposure"] == exposure
    here = _in_process(ds, clf, members, exposure).summary()
    assert there["target"]["n_members"] == members.sum() == here["target"]["n_members"]
    assert set(there["attacks"]) == set(here["attacks"]) and len(here["attacks"]) >= 3
    for name, entry in here["attacks"].items():
        assert abs(there["attacks"][name]["auc"] - entry["auc"]) <= 1e-9, name
