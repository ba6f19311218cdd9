"""Ray for real: a head and a second node started with ``ray start`` on 127.0.0.1, an audit
run on them with ``miaudit run --executor ray --ray-address``, which puts the training data
in the object store once and gives the figures of an in-process run.

The nodes run with ``--block`` in a process group of their own, so that the teardown stops
exactly them (``ray stop --force`` would stop every Ray process on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'miaudit[ray]')")
pytest.importorskip("torch")

BIN = Path(sys.executable).parent
RAY, MIAUDIT = BIN / "ray", BIN / "miaudit"
NODE_MEMORY = str(100 * 2**20)  # object store per node: the test data is a few kB

# `miaudit run` with a record of the ray.put calls and of the arguments of every task
RECORDER = """
import json, sys
import ray
from miaudit.cli import app

puts, tasks = [], []
real_put, real_remote = ray.put, ray.remote

def put(value, *args, **kwargs):
    parts = value if isinstance(value, tuple) else (value,)
    puts.append([type(p).__name__ for p in parts])
    return real_put(value, *args, **kwargs)

class Recorded:
    def __init__(self, handle):
        self.handle = handle
    def remote(self, *args, **kwargs):
        tasks.append([type(a).__name__ for a in args])
        return self.handle.remote(*args, **kwargs)

def remote(*args, **kwargs):  # miaudit's tasks recorded, Ray's own left alone
    handle = real_remote(*args, **kwargs)
    ours = getattr(args[0], "__module__", "").startswith("miaudit") if args else False
    return Recorded(handle) if ours else handle

ray.put, ray.remote = put, remote
try:
    app(sys.argv[2:], prog_name="miaudit")
finally:
    with open(sys.argv[1], "w") as f:
        json.dump({"puts": puts, "tasks": tasks}, f)
"""


@dataclass(frozen=True)
class Cluster:
    address: str
    env: dict[str, str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    """The active nodes that ``ray status`` lists (0 while the cluster is not up)."""
    out = subprocess.run([str(RAY), "status", "--address", address], env=env,
                         capture_output=True, text=True, timeout=60).stdout
    active = out.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in out else ""
    return len(re.findall(r"^\s*\d+ node_", active, flags=re.MULTILINE))


def _start_node(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([str(RAY), "start", "--block", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_for(address: str, n: int, nodes: list[subprocess.Popen], logs: list[Path],
              env: dict[str, str], timeout: float = 120) -> None:
    """Wait until ``n`` nodes are up; skip (with the log) when a node does not start."""
    deadline = time.monotonic() + timeout
    while _alive_nodes(address, env) < n:
        dead = [log for proc, log in zip(nodes, logs, strict=True) if proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            tail = dead[0].read_text()[-1500:] if dead else logs[-1].read_text()[-1500:]
            pytest.skip(f"`ray start` could not bring up {n} node(s) on 127.0.0.1 "
                        f"({'it exited' if dead else 'timed out'}):\n{tail}")
        time.sleep(1)


def _stop_node(proc: subprocess.Popen) -> None:
    """Stop a ``ray start --block`` node: SIGTERM drains it and stops its processes; then
    anything left in its process group (its own, ``start_new_session``) is killed."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@pytest.fixture(scope="module")
def cluster(request) -> Cluster:
    """A head and a second node of one CPU each on 127.0.0.1, with token authentication."""
    if not RAY.exists() or not MIAUDIT.exists():
        pytest.skip(f"no `ray` or `miaudit` executable next to {sys.executable}")
    # short: Ray's socket paths under the temp dir must fit in 107 characters
    tmp = Path(tempfile.mkdtemp(prefix="miaudit-ray-"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_USAGE_STATS_ENABLED="0")
    address = f"127.0.0.1:{_free_port()}"
    nodes: list[subprocess.Popen] = []

    def stop() -> None:
        for proc in reversed(nodes):
            _stop_node(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    request.addfinalizer(stop)
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory",
              NODE_MEMORY, "--disable-usage-stats", "--temp-dir", str(tmp)]
    logs = [tmp / "head.log", tmp / "node.log"]
    nodes.append(_start_node(["--head", "--port", address.split(":")[1],
                              "--include-dashboard", "false", *common], logs[0], env))
    _wait_for(address, 1, nodes, logs[:1], env)
    nodes.append(_start_node(["--address", address, *common], logs[1], env))
    _wait_for(address, 2, nodes, logs, env)
    return Cluster(address, env)


def _aucs(run: Path) -> dict[str, float]:
    summary = json.loads((run / "summary.json").read_text())
    return {name: entry["auc"] for name, entry in summary["attacks"].items()}


@pytest.mark.slow
def test_an_audit_on_a_two_node_cluster(cluster, tmp_path):
    args = ["run", "--data", "wine", "--references", "4", "-p", "epochs=3", "--no-cache",
            "--no-registry", "--attacks", "loss,lira-online,rmia-offline"]
    calls = tmp_path / "ray-calls.json"
    on_ray = subprocess.run(
        [sys.executable, "-c", RECORDER, str(calls), *args, "--executor", "ray",
         "--ray-address", cluster.address, "--out", str(tmp_path / "ray")],
        env=cluster.env, capture_output=True, text=True, timeout=240)
    assert on_ray.returncode == 0, on_ray.stdout[-2000:] + on_ray.stderr[-3000:]
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    training = summary["target"]["training"]
    assert training["executor"] == "ray"
    assert training["ray"]["nodes"] == 2  # the head and the second node both trained
    # the training data (X, y) was put once; every task got its rows and the reference
    record = json.loads(calls.read_text())
    assert record["puts"] == [["ndarray", "ndarray"]]
    assert len(record["tasks"]) == training["ray"]["tasks"] >= 2
    assert all(task == ["Chunk", "ObjectRef", "str"] for task in record["tasks"])
    # miaudit only disconnected: the cluster it did not start is still up
    assert _alive_nodes(cluster.address, cluster.env) == 2

    # the same seed and chunks in this process: the same figures
    here = subprocess.run(
        [str(MIAUDIT), *args, "--models-per-batch", str(training["models_per_batch"]),
         "--out", str(tmp_path / "here")], capture_output=True, text=True, timeout=240)
    assert here.returncode == 0, here.stderr[-3000:]
    plain = json.loads((tmp_path / "here" / "summary.json").read_text())["target"]["training"]
    assert plain["trained"] == training["trained"]
    assert _aucs(tmp_path / "ray") == _aucs(tmp_path / "here")
    with np.load(tmp_path / "ray" / "signals.npz") as a, \
            np.load(tmp_path / "here" / "signals.npz") as b:
        assert np.array_equal(a["logits"], b["logits"])
