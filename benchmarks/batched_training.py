"""Batched reference training vs training the same models one by one.

K tanh MLPs (446-256-128-30) on Location30, each on its own half of the records, same
recipe, seeds and minibatch orders: once with miaudit's batched trainer (stacked weights,
one baddbmm per layer) and once with a plain PyTorch loop per model (how ML Privacy Meter
trains reference models). Reports the wall times, their ratio, the achieved GFLOP/s and
the machine's measured float32 matmul peak.

    python benchmarks/batched_training.py [--models 16] [--epochs 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import torch
from _results import table, write_section

from miaudit.data import load_dataset
from miaudit.game import membership_design
from miaudit.models import make_recipe, train
from miaudit.models.batched import train_batched

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "location30.npz"


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    ds = load_dataset(DATA)
    n = ds.n_records - ds.n_records % 2
    X, y = ds.X[:n], ds.y[:n]
    recipe = make_recipe("mlp", {"epochs": args.epochs})
    design = membership_design(n, args.models, seed=0)
    seeds = list(range(args.models))
    # warm up both paths (allocator, threads)
    warm = make_recipe("mlp", {"epochs": 1})
    train_batched(warm, X, y, design[:2], n_classes=30, seeds=[0, 1], device=args.device)
    train(warm, X[design[0]], y[design[0]], n_classes=30, seed=0, device=args.device)

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    t = time.perf_counter()
    train_batched(recipe, X, y, design, n_classes=30, seeds=seeds, device=args.device)
    sync()
    batched = time.perf_counter() - t
    t = time.perf_counter()
    for m in range(args.models):
        train(recipe, X[design[m]], y[design[m]], n_classes=30, seed=m, device=args.device)
    sync()
    sequential = time.perf_counter() - t

    widths = [ds.n_features, *recipe.hidden, 30]
    per_sample = sum(2 * a * b for a, b in itertools.pairwise(widths))
    flops = 3 * per_sample * (n // 2) * args.epochs * args.models  # forward + backward
    peak = matmul_peak(args.device)
    rows = [
        {"trainer": "one by one (plain PyTorch loop)", "wall s": f"{sequential:.1f}",
         "GFLOP/s": f"{flops / sequential / 1e9:.1f}", "% of matmul peak":
         f"{100 * flops / sequential / 1e9 / peak:.1f}"},
        {"trainer": "batched (miaudit)", "wall s": f"{batched:.1f}",
         "GFLOP/s": f"{flops / batched / 1e9:.1f}", "% of matmul peak":
         f"{100 * flops / batched / 1e9 / peak:.1f}"},
    ]
    body = (
        f"{args.models} tanh MLPs 446-256-128-30 on Location30, {n // 2} records each, "
        f"{args.epochs} epochs, batch {recipe.batch_size}, Adam, device {args.device}.\n\n"
        + table(rows, ["trainer", "wall s", "GFLOP/s", "% of matmul peak"])
        + f"\n\n**Speed-up: {sequential / batched:.1f}x** (same run). Measured float32 matmul "
        f"peak (2048x2048): {peak:.0f} GFLOP/s. FLOPs counted as 3 x 2 x weights per sample "
        "(forward + backward)."
    )
    write_section(f"Batched training ({args.device})", body)


if __name__ == "__main__":
    main()
