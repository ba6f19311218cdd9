# ruff: noqa: F811  (the fixtures imported from test_http are parameters of the tests)
"""HTTPTarget under faults: retries (tenacity), malformed 200 answers, the request counts of
client and server, and the answer cache's check against a float32 endpoint."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("httpx")
pytest.importorskip("tenacity")

import miaudit  # noqa: E402
from miaudit.errors import ConfigError, MiauditWarning, OutputError  # noqa: E402
from miaudit.targets import TorchTarget  # noqa: E402
from miaudit.targets.http import HTTPTarget  # noqa: E402
from miaudit.targets.http import retries as retries_module  # noqa: E402
from miaudit.targets.http.cache import same_answer  # noqa: E402
from miaudit.targets.http.retries import backoff_wait  # noqa: E402
from miaudit.testing.server import Faults, ModelServer, serve_in_thread  # noqa: E402

# the same endpoint, model and data as the other HTTP tests
from test_http import _one_torch_thread, ds, local, members, module, serving  # noqa: E402, F401


def _fault_sequence(faults: Faults, n: int) -> list[str | None]:
    """The faults the server draws for its first ``n`` requests."""
    server = ModelServer(lambda X: np.full((len(X), 2), 0.5), faults=faults)
    try:
        return [server.draw_faults()[1] for _ in range(n)]
    finally:
        server.stop()


def _seed_with(faults: Faults, wanted: list[str | None]) -> int:
    """A seed whose first requests draw the ``wanted`` faults, in order (``"*"``: any)."""
    for seed in range(500):
        drawn = _fault_sequence(Faults(**{**faults.__dict__, "seed": seed}), len(wanted))
        if all(w in ("*", d) for w, d in zip(wanted, drawn, strict=True)):
            return seed
    raise AssertionError(f"no seed draws {wanted}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ all faults at once


def test_all_faults_at_once_give_a_clean_runs_figures_and_counts_that_agree(
        ds, members, module):
    """429s, 500s, dropped connections and malformed 200 bodies together: the audit's
    figures equal a clean run's, and the client's counts equal the server's."""
    faults = Faults(p429=0.1, p500=0.1, p_drop=0.1, p_malformed=0.2, retry_after=0.01,
                    seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with serving(TorchTarget(module)) as (url, _), HTTPTarget(url, batch_size=64) as t:
            clean = miaudit.audit(data=ds, model=t, members=members, exposure="logits")
        # a long timeout: no answer comes late on a loaded machine, so that the server has
        # finished every request it counted when the counts are compared
        with serving(TorchTarget(module), faults=faults) as (url, stats), \
                HTTPTarget(url, batch_size=64, concurrency=4, retries=20, backoff=0.001,
                           timeout=120) as t:
            faulty = miaudit.audit(data=ds, model=t, members=members, exposure="logits")
    pd.testing.assert_frame_equal(clean.scores, faulty.scores)
    a, b = clean.summary(), faulty.summary()
    assert a["attacks"] == b["attacks"] and a["verdict"] == b["verdict"]
    assert a["target"]["outputs_sha256"] == b["target"]["outputs_sha256"]
    s = stats.snapshot()
    assert {"429", "500", "drop", "200-not-json", "200-bad-shape"} <= set(s["status"])
    batches = -(-ds.n_records // 64)
    assert t.requests == s["requests"] == sum(s["status"].values())
    assert t.requests - t.retries_made == s["status"]["200"] == batches
    assert t.queries == s["rows_received"] and s["rows_answered"] == ds.n_records
    assert b["target"]["http"]["requests"] == s["requests"]  # what summary.json reports
    assert b["target"]["http"]["retries"] == s["requests"] - batches


# ------------------------------------------------------------------ malformed 200 answers


def test_malformed_200_answers_are_retried(ds, module, local):
    f = Faults(p_malformed=0.4)
    seed = _seed_with(f, ["not-json", None, "bad-shape", None])
    with serving(TorchTarget(module), faults=Faults(p_malformed=0.4, seed=seed)) as (
            url, stats), HTTPTarget(url, batch_size=100, concurrency=1, backoff=0.0) as t:
        out = t.outputs(ds.X[:200])
    np.testing.assert_array_equal(out.values, local.values[:200])
    s = stats.snapshot()
    assert s["status"] == {"200-not-json": 1, "200": 2, "200-bad-shape": 1}
    assert t.requests == s["requests"] == 4 and t.retries_made == 2
    assert t.queries == s["rows_received"] == 400 and s["rows_answered"] == 200


@pytest.mark.parametrize(("last", "message"), [
    ("not-json", r"^The endpoint \S+ answered HTTP 200 with a body that is not JSON "
                 r"\('\{\"logits\":\[\["),
    ("bad-shape", r"^The endpoint \S+ returned 9 answers for 10 records; it must answer "
                  r"every record of a batch, in order\.$"),
])
def test_malformed_200_fails_with_its_own_error_when_the_retries_are_used_up(
        module, last, message):
    seed = _seed_with(Faults(p_malformed=1.0), ["*", "*", last])
    faults = Faults(p_malformed=1.0, seed=seed)
    with serving(TorchTarget(module), faults=faults) as (url, stats), \
            HTTPTarget(url, retries=2, backoff=0.0) as t, \
            pytest.raises(OutputError, match=message) as err:
        t.outputs(np.zeros((10, 64)))
    assert "\n" not in str(err.value)
    assert t.requests == stats.requests == 3 and t.queries == stats.rows_received == 30


def test_server_refuses_fault_probabilities_over_one():
    with pytest.raises(ConfigError, match="p-malformed"):
        Faults(p_malformed=-0.1)
    with pytest.raises(ConfigError, match=r"p-malformed add up to more than 1 \(1.2\)"):
        Faults(p500=0.5, p_malformed=0.7)


# ------------------------------------------------------------------ tenacity's policy


def test_backoff_doubles_with_a_random_factor():
    wait = backoff_wait(0.5)
    for n in (1, 2, 5):
        waits = np.array([wait(SimpleNamespace(attempt_number=n)) for _ in range(400)])
        base = 0.5 * 2 ** (n - 1)
        assert waits.min() >= 0.5 * base and waits.max() < 1.5 * base
        assert waits.max() - waits.min() > 0.8 * base  # spread over [0.5, 1.5) x base
    assert backoff_wait(0.0)(SimpleNamespace(attempt_number=3)) == 0.0


def test_a_retry_after_past_the_cap_is_not_waited(module, monkeypatch):
    monkeypatch.setattr(retries_module, "MAX_RETRY_AFTER", 0.5)
    with serving(TorchTarget(module), faults=Faults(p429=1.0, retry_after=30)) as (
            url, stats), HTTPTarget(url) as t:
        start = time.perf_counter()
        with pytest.raises(OutputError, match=r"asks to retry after 30 s \(Retry-After\)"):
            t.outputs(np.zeros((3, 64)))
        assert time.perf_counter() - start < 5
    assert t.requests == stats.requests == 1 and t.retries_made == 0


# ------------------------------------------------------------------ request accounting


def test_attempts_that_cannot_connect_are_not_requests_nor_queries(module):
    """The cause of a client count above the server's: an attempt whose connection was
    refused (or timed out connecting) sent nothing, yet was counted as a request and its
    rows as queries. Now the counts are the server's, and the budget is not spent."""
    port = _free_port()
    with HTTPTarget(f"http://127.0.0.1:{port}/predict", retries=2, backoff=0.0) as t, \
            pytest.raises(OutputError, match=r"after 3 attempt\(s\); last: could not "
                                             r"connect \(ConnectError"):
        t.outputs(np.zeros((5, 64)))
    assert (t.requests, t.queries, t.connect_failures) == (0, 0, 3)
    # the endpoint comes up while the client retries: one request, one batch of rows
    started: dict = {}

    def start_late() -> None:
        time.sleep(0.3)
        started["url"], started["stop"] = serve_in_thread(TorchTarget(module), "logits",
                                                          port=port)

    thread = threading.Thread(target=start_late)
    thread.start()
    try:
        with HTTPTarget(f"http://127.0.0.1:{port}/predict", retries=40, backoff=0.02,
                        budget=10) as t:
            t.outputs(np.zeros((10, 64)))
    finally:
        thread.join()
        started["stop"]()
    s = started["stop"].stats
    assert t.connect_failures >= 1 and t.retries_made == 0
    assert t.requests == s.requests == 1 and t.queries == s.rows_received == 10


# ------------------------------------------------------------------ the answer cache's check


class _Float32Model:
    """Probabilities of a float32 linear model whose features are summed in blocks sized by
    the batch, as BLAS kernels do: a row in a batch of 8 rounds differently from the same
    row in a batch of 256."""

    def __init__(self, W: np.ndarray) -> None:
        self.W = W.astype(np.float32)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        block = 3 if len(X) <= 8 else 16
        z = np.zeros((len(X), self.W.shape[1]), dtype=np.float32)
        for s in range(0, X.shape[1], block):
            z += X[:, s : s + block] @ self.W[s : s + block]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_a_float32_endpoint_keeps_its_cache_and_a_changed_one_drops_it(ds, tmp_path):
    W = np.random.default_rng(0).normal(scale=0.1, size=(64, 10))
    served = {"model": _Float32Model(W)}
    X = ds.X[:300]
    with serving(lambda X: served["model"](X), "probabilities") as (url, _):
        with HTTPTarget(url, cache_dir=tmp_path, batch_size=256) as t:
            first = t.outputs(X)
        with HTTPTarget(url, batch_size=8) as probe:  # the rows of the check, as it asks
            eight = probe.outputs(X[:8])
        gap = np.abs(eight.values - first.values[:8]) / first.values[:8]
        assert gap.max() > 1e-9  # the old check (1e-9) dropped this cache
        with warnings.catch_warnings():
            warnings.simplefilter("error", MiauditWarning)
            with HTTPTarget(url, cache_dir=tmp_path, batch_size=256) as t:
                again = t.outputs(X)
        assert not t.cache_dropped and t.queries == 8 and t.cache_hits == len(X)
        np.testing.assert_array_equal(again.values, first.values)
        # a changed model (every weight 0.1% larger) behind the same URL is caught
        served["model"] = _Float32Model(W * 1.001)
        with HTTPTarget(url, cache_dir=tmp_path, batch_size=256) as t, \
                pytest.warns(MiauditWarning, match="answers differently"):
            changed = t.outputs(X)
        assert t.cache_dropped and t.queries == 8 + len(X)
    np.testing.assert_allclose(changed.values, served["model"](X), rtol=1e-6)
    assert np.abs(changed.values - first.values).max() > 1e-4


def test_same_answer_tolerates_float32_rounding_only():
    p = [0.2, 0.3, 0.5]
    assert same_answer(["p", p], ["p", [0.2 * (1 + 4e-7), 0.3 * (1 - 2e-7), 0.5]])
    assert same_answer(["v", [1e-9, 1 - 1e-9]], ["v", [3e-9, 1 - 3e-9]])  # near 0: atol
    assert not same_answer(["p", p], ["p", [0.2001, 0.2999, 0.5]])
    assert not same_answer(["p", p], ["p", p[:2]]) and not same_answer(["p", p], ["z", p])
    # logits: within rounding of the row's scale
    assert same_answer(["z", [30.0, -2.0, 0.0]], ["z", [30.0 + 1e-4, -2.0, 2e-5]])
    assert not same_answer(["z", [30.0, -2.0, 0.0]], ["z", [30.01, -2.0, 0.0]])
    # top-k: a near-tie may swap the order, not the labels or the values
    k = ["k", [[1, 0.4], [2, 0.4000001]]]
    assert same_answer(k, ["k", [[2, 0.4000001], [1, 0.4]]])
    assert not same_answer(k, ["k", [[1, 0.4], [3, 0.4000001]]])
    assert not same_answer(k, ["k", [[1, 0.41], [2, 0.39]]])
    # labels: exact
    assert same_answer(["l", 3], ["l", 3]) and not same_answer(["l", 3], ["l", 4])
    assert same_answer(["l", "cat"], ["l", "cat"]) and not same_answer(["l", "cat"],
                                                                       ["l", "dog"])
