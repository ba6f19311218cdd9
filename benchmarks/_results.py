"""Write one benchmark's section of benchmarks/RESULTS.md (between markers), with the
command that produced it and the hardware it ran on."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is rewritten by the script named in it.\n"


def best_of(repeats: int, fn) -> tuple[float, object]:
    """The shortest wall time (s) of ``repeats`` calls of ``fn``, and its last result: the
    least disturbed run on a shared machine."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def matmul_peak(device: str = "cpu", n: int = 2048, repeats: int = 10) -> float:
    """Measured float32 matrix-product throughput (GFLOP/s) of ``device``: the yardstick
    printed beside every absolute time, since machines differ."""
    import torch

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


def hardware() -> str:
    try:
        import torch

        torch_info = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                      f"float32 matmul peak {matmul_peak():.0f} GFLOP/s")
        if torch.cuda.is_available():
            torch_info += (f", GPU {torch.cuda.get_device_name(0)} "
                           f"({matmul_peak('cuda'):.0f} GFLOP/s)")
    except ImportError:
        torch_info = "no torch"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {torch_info}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md."""
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(RESULTS.parents[1])
    command = " ".join(["python", script.as_posix(), *sys.argv[1:]])
    section = (f"<!-- {name}:start -->\n## {name}\n\n"
               f"Command: `{command}`  \nMeasured {date.today()} on {hardware()}.\n\n"
               f"{body.strip()}\n<!-- {name}:end -->")
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->",
                         re.S)
    text = pattern.sub(lambda _m: section, text) if pattern.search(text) else (
        text.rstrip() + "\n\n" + section + "\n")
    RESULTS.write_text(text)
    print(section)


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)
