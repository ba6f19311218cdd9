"""HTTPTarget's wire-format presets (kserve-v2, tf-serving, mlflow) against minimal servers
of each format: the same audit as in-process, the URL handling, the mismatch errors and the
exposure detection through each preset."""

from __future__ import annotations

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression

import miaudit
from miaudit.data import load_dataset
from miaudit.errors import ConfigError, OutputError
from miaudit.targets.http import HTTPTarget, detect_exposure
from miaudit.targets.http.protocols import protocol_urls
from miaudit.targets.http.wire import sniff_protocol
from miaudit.testing.protocol_server import ProtocolServer

PRESETS = ["kserve-v2", "tf-serving", "mlflow"]


@pytest.fixture(scope="module")
def ds():
    return load_dataset("wine")


@pytest.fixture(scope="module")
def members(ds):
    return np.arange(ds.n_records) % 2 == 0


@pytest.fixture(scope="module")
def clf(ds, members):
    return LogisticRegression(max_iter=500).fit(ds.X[members], ds.y[members])


def _proba(clf):
    return lambda X: clf.predict_proba(np.asarray(X, dtype=np.float32))


# ------------------------------------------------------------------ same audit as in-process


@pytest.mark.parametrize("protocol", PRESETS)
def test_audit_through_each_preset_equals_in_process(ds, members, clf, protocol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        here = miaudit.audit(data=ds, model=_proba(clf), members=members,
                             exposure="probabilities")
        with ProtocolServer(_proba(clf), protocol) as server, \
                HTTPTarget(server.url, protocol=protocol, batch_size=50) as target:
            there = miaudit.audit(data=ds, model=target, members=members,
                                  exposure="probabilities")
    assert target.queries == ds.n_records == server.counts["rows"]
    a, b = here.summary()["attacks"], there.summary()["attacks"]
    assert a.keys() == b.keys() and len(a) >= 3
    for name in a:
        assert abs(a[name]["auc"] - b[name]["auc"]) <= 1e-12, name
        np.testing.assert_allclose(there.scores[name], here.scores[name], rtol=1e-9,
                                   atol=1e-12)


def test_kserve_reads_the_metadata_and_chooses_the_probabilities(ds, clf):
    X = ds.X[:7]
    with ProtocolServer(_proba(clf), "kserve-v2", name="wine") as server, \
            HTTPTarget(server.url, protocol="kserve-v2") as target:
        out = target.outputs(X)
        body = server.last_body
    # float32 probabilities renormalised to sum to 1 in float64
    np.testing.assert_allclose(out.values, clf.predict_proba(X), rtol=0, atol=1e-7)
    (tensor,) = body["inputs"]
    assert tensor["name"] == "features" and tensor["datatype"] == "FP64"
    assert tensor["shape"] == [7, 13] and len(tensor["data"]) == 7 * 13
    np.testing.assert_array_equal(np.reshape(tensor["data"], (7, 13)), X)  # row-major
    assert "'probabilities'" in target.protocol_note and "label" in target.protocol_note
    assert "from the model metadata" in target.protocol_note
    assert server.counts["metadata"] == 1 and target.requests == 1  # metadata not counted


def test_kserve_without_metadata_and_other_outputs(ds, clf):
    X = ds.X[:9]
    with ProtocolServer(_proba(clf), "kserve-v2", metadata=False) as server:
        with HTTPTarget(server.url + "/infer", protocol="kserve-v2") as target:
            out = target.outputs(X)
            sent = server.last_body["inputs"][0]
        assert sent["name"] == "input-0" and sent["datatype"] == "FP32"
        assert "input-0" in target.protocol_note and "HTTP 404" in target.protocol_note
        # FP32 rounding of the features only: the same probabilities to float32 precision
        np.testing.assert_allclose(out.values, clf.predict_proba(X), atol=1e-6)
        with HTTPTarget(server.url, protocol="kserve-v2", output="label",
                        n_classes=3) as target:
            labels = target.labels(X)
        np.testing.assert_array_equal(labels, clf.predict(X))
        assert target.answer_form == "label"
        with HTTPTarget(server.url, protocol="kserve-v2", input_name="x",
                        output="scores") as target, pytest.raises(OutputError,
                                                                  match="no output 'scores'"):
            target.retries = 0
            target.outputs(X)
    logit = lambda X: clf.decision_function(np.asarray(X, dtype=np.float32))  # noqa: E731
    with ProtocolServer(logit, "kserve-v2", output_name="logits") as server, \
            HTTPTarget(server.url, protocol="kserve-v2") as target:
        out = target.outputs(X)
    assert out.kind == "logits"
    np.testing.assert_allclose(out.values, clf.decision_function(X), rtol=1e-12)


def test_several_outputs_without_a_recognisable_name_must_be_chosen(ds, clf):
    with ProtocolServer(_proba(clf), "kserve-v2", output_name="scores") as server, \
            HTTPTarget(server.url, protocol="kserve-v2", retries=0) as target, \
            pytest.raises(OutputError, match=r"several outputs \(\['label', 'scores'\]\).*"
                                             "--protocol-output"):
        target.outputs(ds.X[:3])


@pytest.mark.parametrize("form", ["dataframe_split", "inputs", "instances"])
def test_mlflow_body_forms(ds, clf, form):
    X = ds.X[:5]
    names = [f"f{j}" for j in range(13)]
    with ProtocolServer(_proba(clf), "mlflow", mlflow_rows="dicts") as server, \
            HTTPTarget(server.url, protocol="mlflow", input_name=form,
                       columns=names if form == "dataframe_split" else None) as target:
        out = target.outputs(X)
        body = server.last_body
    assert target._url.endswith("/invocations")
    # float32 probabilities renormalised to sum to 1 in float64
    np.testing.assert_allclose(out.values, clf.predict_proba(X), rtol=0, atol=1e-7)
    if form == "dataframe_split":
        assert body["dataframe_split"]["columns"] == names
    else:
        assert np.array_equal(body[form], X)


def test_mlflow_default_columns_and_labels(ds, clf):
    X = ds.X[:4]
    with ProtocolServer(lambda X: np.eye(3)[clf.predict(X)], "mlflow") as server, \
            HTTPTarget(server.url + "/invocations", protocol="mlflow") as target:
        target.outputs(X)
        assert server.last_body["dataframe_split"]["columns"] == [str(j) for j in range(13)]


def test_protocol_urls():
    assert protocol_urls("kserve-v2", "http://h/v2/models/m/versions/2/") == (
        "http://h/v2/models/m/versions/2/infer", "http://h/v2/models/m/versions/2")
    assert protocol_urls("kserve-v2", "https://h/v2/models/m/infer?x=1") == (
        "https://h/v2/models/m/infer?x=1", "https://h/v2/models/m?x=1")
    assert protocol_urls("tf-serving", "http://h:8501/v1/models/m/versions/3")[0] == \
        "http://h:8501/v1/models/m/versions/3:predict"
    assert protocol_urls("tf-serving", "http://h/v1/models/m:predict")[0] == \
        "http://h/v1/models/m:predict"
    assert protocol_urls("mlflow", "http://h/serving-endpoints/m/")[0] == \
        "http://h/serving-endpoints/m/invocations"
    for protocol, url in [("kserve-v2", "http://h/predict"), ("tf-serving", "http://h/v2/x")]:
        with pytest.raises(ConfigError, match=protocol):
            protocol_urls(protocol, url)


def test_bad_protocol_settings_are_refused():
    for kwargs, match in [({"protocol": "triton"}, "Unknown protocol"),
                          ({"protocol": "mlflow", "request": "rows"}, "leave request="),
                          ({"output": "p"}, "go with protocol"),
                          ({"protocol": "mlflow", "input_name": "x"}, "input form")]:
        with pytest.raises(ConfigError, match=match):
            HTTPTarget("http://127.0.0.1:9/v2/models/m", **kwargs)


# ------------------------------------------------------------------ mismatches


def test_sniff_protocol():
    kserve = {"outputs": [{"name": "p", "shape": [1, 2], "datatype": "FP32",
                           "data": [0.5, 0.5]}]}
    assert sniff_protocol(kserve) == "kserve-v2"
    assert sniff_protocol({"outputs": {"p": [[0.5, 0.5]]}}) == "tf-serving"
    assert sniff_protocol([[0.5, 0.5]]) == "mlflow"
    assert sniff_protocol({"logits": [[1.0]]}) == "miaudit"
    assert sniff_protocol({"error": "boom"}) is None and sniff_protocol("x") is None


class _FixedAnswer(BaseHTTPRequestHandler):
    answer: object = None

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _fixed(answer):
    handler = type("H", (_FixedAnswer,), {"answer": answer})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


@pytest.mark.parametrize("protocol, answer, match", [
    ("miaudit", {"model_name": "m", "outputs": [{"name": "p", "shape": [2, 2],
                                                 "datatype": "FP32",
                                                 "data": [0.1, 0.9, 0.2, 0.8]}]},
     r"looks like the Open Inference Protocol \(kserve-v2\); use --protocol kserve-v2"),
    ("mlflow", {"model_name": "m", "outputs": [{"name": "p", "shape": [2, 2],
                                                "datatype": "FP32", "data": [0.5] * 4}]},
     "use --protocol kserve-v2"),
    ("kserve-v2", {"predictions": [[0.1, 0.9], [0.2, 0.8]]},
     "looks like .*predictions.*use --protocol miaudit, tf-serving or mlflow"),
    ("miaudit", [[0.1, 0.9], [0.2, 0.8]], "looks like an MLflow answer.*--protocol mlflow"),
])
def test_a_protocol_mismatch_names_the_protocol_the_answer_looks_like(protocol, answer,
                                                                     match):
    httpd, base = _fixed(answer)
    path = {"kserve-v2": "/v2/models/m", "mlflow": "", "miaudit": "/predict"}[protocol]
    try:
        with HTTPTarget(base + path, protocol=protocol, retries=0) as target, \
                pytest.raises(OutputError, match=match):
            target.outputs(np.zeros((2, 3)))
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_refused_request_at_a_kserve_url_suggests_the_protocol(ds, clf):
    with ProtocolServer(_proba(clf), "kserve-v2") as server, \
            HTTPTarget(server.url + "/infer", retries=0) as target, \
            pytest.raises(ConfigError, match="looks like a kserve-v2 endpoint: add --protocol "
                                             "kserve-v2"):
        target.outputs(ds.X[:2])


# ------------------------------------------------------------------ exposure detection


@pytest.mark.parametrize("protocol, model, output, expected", [
    ("kserve-v2", "proba", None, "probabilities"),
    ("kserve-v2", "proba", "label", "label"),
    ("tf-serving", "rounded", None, "rounded:2"),
    ("mlflow", "logits", None, "logits"),
    ("tf-serving", "proba", None, "probabilities"),
])
def test_detect_exposure_through_each_preset(ds, clf, protocol, model, output, expected):
    fn = {"proba": _proba(clf), "rounded": lambda X: np.round(clf.predict_proba(X), 2),
          "logits": lambda X: clf.decision_function(X)}[model]
    with ProtocolServer(fn, protocol) as server, \
            HTTPTarget(server.url, protocol=protocol, output=output, n_classes=3) as target:
        found = detect_exposure(target, ds.X[:60])
    assert found.setting == expected, found


def test_cli_run_with_a_protocol(tmp_path, ds, members, clf):
    from typer.testing import CliRunner

    from miaudit.cli import app

    ids = tmp_path / "members.txt"
    ids.write_text("\n".join(ds.ids[members].astype(str)))
    with ProtocolServer(_proba(clf), "kserve-v2", name="wine") as server:
        out = tmp_path / "run"
        res = CliRunner().invoke(app, ["run", "--target", server.url, "--protocol",
                                       "kserve-v2", "--data", "wine", "--members", str(ids),
                                       "--out", str(out), "--no-cache", "--no-registry"])
    assert res.exit_code == 0, res.output
    assert "exposure detected" in res.output and "probabilities" in res.output
    assert "kserve-v2: the input 'features'" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exposure"] == "probabilities"
    res = CliRunner().invoke(app, ["run", "--target", "http://127.0.0.1:9/predict",
                                   "--protocol", "kserve-v2", "--data", "wine", "--members",
                                   str(ids), "--out", str(tmp_path / "r2"), "--no-cache",
                                   "--no-registry"])
    assert res.exit_code != 0 and "/v2/models/NAME" in res.output


def test_cli_refuses_endpoint_options_without_an_endpoint(tmp_path):
    from typer.testing import CliRunner

    from miaudit.cli import app

    res = CliRunner().invoke(app, ["run", "--data", "wine", "--protocol", "kserve-v2",
                                   "--out", str(tmp_path / "a"), "--no-registry"])
    assert res.exit_code != 0 and "--target URL" in res.output
    assert not (tmp_path / "a").exists()  # refused before any training
    res = CliRunner().invoke(app, ["run", "--data", "wine", "--target",
                                   "http://127.0.0.1:9/predict", "--members", "m.txt",
                                   "--trust", "x.Y", "--out", str(tmp_path / "b")])
    assert res.exit_code != 0 and "--trust is for a .skops" in res.output
