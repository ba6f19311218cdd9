"""Reliability as an operator tries it: audits killed with SIGKILL mid-training and resumed,
and an audit through an endpoint that fails in every way at once.

1. **Kill points.** ``miaudit run --data location30.npz --references 16`` (18 tanh MLPs
   trained as one batched computation) runs once uninterrupted with the model cache, then,
   for each kill point (a share of that run's wall time), in a fresh cache: killed with
   SIGKILL at that moment, then run again. Reported: how much training the kill lost (the
   time since the last checkpoint), from which epoch the models resumed, the resumed run's
   wall time, and whether its figures equal the uninterrupted run's (every attack's AUC and
   TPRs). Without ``../shared/data`` it uses scikit-learn's digits.
2. **Faults.** A target model served over HTTP (``miaudit.testing.server``) answers with
   10% 429s, 10% 500s, 10% dropped connections and 20% malformed 200 bodies; the audit
   through it is compared with a clean run's, and the client's request count with the
   server's.

    python benchmarks/reliability.py [--kills 0.25,0.5,0.75] [--checkpoint-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _results import table, write_section

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "location30.npz"


def _run(data: str, cache: Path, out: Path, checkpoint_seconds: float) -> list[str]:
    return [sys.executable, "-m", "miaudit", "run", "--data", data, "--references", "16",
            "--attacks", "loss,lira-online,lira-offline,rmia-online", "--cache-dir",
            str(cache), "--checkpoint-seconds", str(checkpoint_seconds), "--out", str(out),
            "--no-registry", "--quiet", "--format", "json"]


def _figures(summary: dict) -> dict:
    return {name: (e["auc"], e.get("tpr_at_fpr")) for name, e in summary["attacks"].items()}


def kill_points(data: str, shares: list[float], every: float, work: Path) -> tuple[list, dict]:
    """Each kill point's row, and the uninterrupted run's facts."""
    start = time.perf_counter()
    whole = subprocess.run(_run(data, work / "c0", work / "r0", every), capture_output=True,
                           text=True, check=True)
    wall = time.perf_counter() - start
    reference = json.loads(whole.stdout)
    rows = []
    for i, share in enumerate(shares, 1):
        cache = work / f"c{i}"
        proc = subprocess.Popen(_run(data, cache, work / f"r{i}", every),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(share * wall)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        saved = list(cache.glob("checkpoints/*.safetensors"))
        lost = killed_at - max(p.stat().st_mtime for p in saved) if saved else None
        start = time.perf_counter()
        again = subprocess.run(_run(data, cache, work / f"r{i}", every), capture_output=True,
                               text=True, check=True)
        resumed_wall = time.perf_counter() - start
        summary = json.loads(again.stdout)
        training = summary["target"]["training"]
        resumed = training.get("resumed")
        rows.append({
            "killed at": f"{share:.0%} ({share * wall:.1f} s)",
            "checkpoints on disk": len(saved),
            "training lost (s)": "all (no checkpoint yet)" if lost is None else f"{lost:.1f}",
            "resumed": (f"{resumed['models']} models from epoch {resumed['from_epoch']}"
                        if resumed else f"{training['cached']} models from the cache"),
            "resumed run (s)": f"{resumed_wall:.1f}",
            "figures identical": _figures(summary) == _figures(reference),
        })
    return rows, {"wall": wall, "epochs": reference["target"]["recipe"]["epochs"],
                  "models": reference["target"]["training"]["trained"]}


def faults() -> dict:
    """An audit through an endpoint with every fault at once, against a clean one."""
    import torch

    import miaudit
    from miaudit.data import load_dataset
    from miaudit.targets import TorchTarget
    from miaudit.targets.http import HTTPTarget
    from miaudit.testing.server import Faults, serve_in_thread

    ds = load_dataset("digits")
    members = np.random.default_rng(0).random(ds.n_records) < 0.5
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                 torch.nn.Linear(32, 10))
    X, y = torch.as_tensor(ds.X[members]), torch.as_tensor(ds.y[members])
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(module(X), y).backward()
        opt.step()
    torch.set_num_threads(1)  # float32 products round alike whatever the batch size
    plan = Faults(p429=0.1, p500=0.1, p_drop=0.1, p_malformed=0.2, retry_after=0.01, seed=4)
    results = {}
    for name, f in (("clean", None), ("faulty", plan)):
        url, stop = serve_in_thread(TorchTarget(module.eval()), "logits", f)
        try:
            with warnings.catch_warnings(), HTTPTarget(url, batch_size=64, concurrency=4,
                                                       retries=20, backoff=0.001,
                                                       timeout=120) as t:
                warnings.simplefilter("ignore")
                audit = miaudit.audit(data=ds, model=t, members=members, exposure="logits")
                results[name] = (audit.summary(), t.requests, stop.stats.snapshot())
        finally:
            stop()
    (clean, _, _), (faulty, requests, server) = results["clean"], results["faulty"]
    return {"status": server["status"], "client requests": requests,
            "server requests": server["requests"],
            "identical": _figures(clean) == _figures(faulty),
            "rows answered": server["rows_answered"], "records": ds.n_records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", default="0.25,0.5,0.75")
    parser.add_argument("--checkpoint-seconds", type=float, default=10.0)
    args = parser.parse_args()
    data = str(DATA) if DATA.exists() else "digits"
    shares = [float(s) for s in args.kills.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        rows, whole = kill_points(data, shares, args.checkpoint_seconds, Path(tmp))
    f = faults()
    body = (
        f"**Kill points.** `miaudit run --data {Path(data).name} --references 16` "
        f"({whole['models']} models, {whole['epochs']} epochs, one batched computation) took "
        f"{whole['wall']:.1f} s uninterrupted; each run below was killed with SIGKILL at the "
        f"given moment in a fresh cache and run again (checkpoints every "
        f"{args.checkpoint_seconds:g} s).\n\n"
        + table(rows, ["killed at", "checkpoints on disk", "training lost (s)", "resumed",
                       "resumed run (s)", "figures identical"])
        + "\n\nTraining lost: time between the last checkpoint and the kill (the most a kill "
        "can lose is one interval). Before checkpoints (commit 7da6f2e), kills at 15, 45 and "
        "90 s left 0 reusable models of such an audit.\n\n"
        f"**Faults.** An audit of {f['records']} records through an endpoint answering "
        f"with every fault at once (server statuses: "
        + ", ".join(f"{k} {v}" for k, v in sorted(f["status"].items()))
        + f"): figures identical to a clean run's: {f['identical']}; requests counted by the "
        f"client {f['client requests']}, by the server {f['server requests']}; rows answered "
        f"{f['rows answered']}.\n\n"
        "Hostile inputs: `tests/test_fuzz_loaders.py` runs the loaders (CSV, npz, Parquet, "
        "spec TOML/YAML, policy, outputs, ID lists) on generated inputs in every test run; "
        "each must end in miaudit's own error or a result.")
    write_section("Reliability", body)


if __name__ == "__main__":
    main()
