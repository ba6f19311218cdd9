"""Querying a model over HTTP: rows per second through HTTPTarget, and the overhead.

A tanh MLP (64-128-10, the digits shape) is saved as miaudit saves models
(weights.safetensors + meta.json) and served by ``miaudit http serve`` in a separate
process on 127.0.0.1 (exposure ``probabilities``, no faults). HTTPTarget sends N rows of
float32 features with batch sizes 64, 256 and 1024 and 1 or 4 requests in flight, without
cache; each setting runs ``--repeats`` times and the best is kept. The same rows are scored
in-process (TorchTarget) in the same run, which gives the overhead ratio; every HTTP answer
is checked against the in-process probabilities.

    python benchmarks/http_target.py [--rows 16384] [--repeats 3]
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
from pathlib import Path

import numpy as np
import torch
from _results import table, write_section
from safetensors.numpy import save_file

from miaudit.targets import TorchTarget
from miaudit.targets.http import HTTPTarget
from miaudit.training import build_module, make_recipe

N_FEATURES, N_CLASSES = 64, 10
SERVER = ("import typer; from miaudit.cli.http import register; app = typer.Typer(); "
          "register(app); app()")


def save_model(folder: Path) -> torch.nn.Module:
    recipe = make_recipe("mlp", {"hidden": "128"})
    torch.manual_seed(0)
    module = build_module(recipe, N_FEATURES, N_CLASSES).eval()
    save_file({k: v.detach().numpy().copy() for k, v in module.state_dict().items()},
              str(folder / "weights.safetensors"))
    (folder / "meta.json").write_text(json.dumps({"recipe": recipe.to_dict(),
                                                  "n_classes": N_CLASSES}))
    return module


def best_of(repeats: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X = np.random.default_rng(0).normal(size=(args.rows, N_FEATURES)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        module = save_model(Path(tmp))
        local_s, local = best_of(args.repeats, lambda: TorchTarget(module).outputs(X))
        probs = local.probs()
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        proc = subprocess.Popen([sys.executable, "-c", SERVER, "serve-model", tmp, "--port",
                                 "0", "--exposure", "probabilities"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=env)
        try:
            url = proc.stdout.readline().strip()
            if not url.startswith("http://"):
                raise SystemExit("the server did not start")
            rows = []
            for batch in (64, 256, 1024):
                for concurrency in (1, 4):
                    with HTTPTarget(url, batch_size=batch, concurrency=concurrency) as target:
                        target.outputs(X[:batch])  # connect
                        seconds, out = best_of(args.repeats, lambda t=target: t.outputs(X))
                    np.testing.assert_allclose(out.values, probs, rtol=0, atol=1e-12)
                    rows.append({"batch size": batch, "concurrency": concurrency,
                                 "rows/s": f"{args.rows / seconds:,.0f}",
                                 "requests/s": f"{args.rows / batch / seconds:,.1f}",
                                 "seconds": f"{seconds:.2f}",
                                 "x in-process time": f"{seconds / local_s:,.0f}"})
                    print(rows[-1], flush=True)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
    best = max(rows, key=lambda r: float(r["rows/s"].replace(",", "")))
    body = (
        f"{args.rows:,} rows of {N_FEATURES} float32 features, a tanh MLP "
        f"{N_FEATURES}-128-{N_CLASSES} served by `miaudit http serve` (exposure "
        "probabilities, no faults) in another process on 127.0.0.1; HTTPTarget without "
        f"cache; best of {args.repeats}. In-process scoring (TorchTarget) of the same rows: "
        f"{local_s * 1000:.1f} ms ({args.rows / local_s:,.0f} rows/s). Every answer equals "
        "the in-process probabilities.\n\n"
        + table(rows, ["batch size", "concurrency", "rows/s", "requests/s", "seconds",
                       "x in-process time"])
        + f"\n\nFastest: batch {best['batch size']}, concurrency {best['concurrency']}, "
        f"{best['rows/s']} rows/s, {best['x in-process time']} times the in-process time. "
        "On 127.0.0.1 the cost is JSON, not the network: every feature is written as text "
        "(the exact float, 17 digits) by the client and parsed by the server, in Python "
        "on both sides, and here client and server share the same cores. A remote "
        "endpoint adds its round trip per request, which larger batches and more requests "
        "in flight hide."
    )
    write_section("HTTP target: rows per second over HTTP", body)


if __name__ == "__main__":
    main()
