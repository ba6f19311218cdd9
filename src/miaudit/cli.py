"""The ``miaudit`` command line: a thin layer over the library.

Known errors print one line on stderr and exit with code 1; set ``MIAUDIT_DEBUG=1`` to
see the traceback instead. Data goes to stdout, messages to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from miaudit import __version__
from miaudit.errors import MiauditError, MiauditWarning

app = typer.Typer(
    name="miaudit",
    help="Audit machine-learning models for membership-inference leakage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output is not wrapped at 80 columns: the summary table stays one line per attack.
out_console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def _friendly(fn: F) -> F:
    """Turn known errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MiauditError as exc:
            if os.environ.get("MIAUDIT_DEBUG"):
                raise
            err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/]: nothing was written.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _version_callback(value: bool) -> None:
    if value:
        print(f"miaudit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version_callback,
                                          is_eager=True, help="Show the version.")] = False,
) -> None:
    """Audit machine-learning models for membership-inference leakage."""


def _split_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _default_out(data: str | None, model: str) -> Path:
    stem = Path(data).name.split(".")[0] if data else "outputs"
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{stem}-{model}"


@app.command(
    epilog=(
        "Examples:\n\n"
        "  miaudit run --data digits\n\n"
        "  miaudit run --data location30.npz --model mlp --attacks loss,mentr --out runs/loc\n\n"
        "  miaudit run --data adult.csv.gz --label-column income --model logistic\n\n"
        "  miaudit run --data location30.npz --references 16 --targets 4\n\n"
        "  miaudit run --outputs my_logits.npz --exposure probabilities"
    )
)
@_friendly
def run(
    data: Annotated[str | None, typer.Option(
        help="Built-in name (digits, breast_cancer, wine) or a .npz/.csv/.csv.gz/.parquet file."
    )] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a CSV/Parquet file.")
                            ] = None,
    id_column: Annotated[str | None, typer.Option(
        help="Record-ID column of a CSV/Parquet file (not used as a feature)."
    )] = None,
    n_records: Annotated[int | None, typer.Option(
        help="Use a seeded, class-stratified subset of this many records."
    )] = None,
    model: Annotated[str, typer.Option(
        help="Recipe to train as the target: mlp, logistic or cnn (images)."
    )] = "mlp",
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Recipe parameter key=value, repeatable (e.g. -p epochs=20 "
        "-p hidden=128,64)."
    )] = None,
    outputs: Annotated[Path | None, typer.Option(
        help="Precomputed outputs (.npz with logits or probs, y, is_member) instead of "
        "training a model."
    )] = None,
    attacks: Annotated[str | None, typer.Option(
        help="Comma-separated attacks (see 'miaudit attacks'); default: all the exposure allows."
    )] = None,
    exposure: Annotated[str, typer.Option(
        help="What the attacker sees: logits, probabilities, top-k:K, rounded:D, label, loss."
    )] = "logits",
    references: Annotated[int, typer.Option(
        help="Reference models to train with the target (enables LiRA, RMIA, Attack-R, "
        "Shokri)."
    )] = 0,
    reference_mode: Annotated[str, typer.Option(
        help="online: references train on halves of the audited records; offline: on "
        "separate population records only."
    )] = "online",
    targets: Annotated[int, typer.Option(
        help="With references: models that take the target's role in turn (pooled)."
    )] = 1,
    lira_variance: Annotated[str, typer.Option(
        help="LiRA variance: auto (global below 64 references), global or per-example."
    )] = "auto",
    rmia_gamma: Annotated[float, typer.Option(help="RMIA's pairwise threshold gamma.")] = 1.0,
    rmia_temperature: Annotated[float, typer.Option(
        help="Softmax temperature of RMIA's Pr(x|model)."
    )] = 2.0,
    seed: Annotated[int, typer.Option(help="Seed of the split, training and folds.")] = 0,
    out: Annotated[Path | None, typer.Option(
        help="Run folder (default: runs/<time>-<data>-<model>)."
    )] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the run folder of a previous run."
    )] = False,
    alpha: Annotated[float, typer.Option(help="1 - confidence level of the intervals.")] = 0.05,
    prior: Annotated[float, typer.Option(help="Membership prior for the PPV.")] = 0.5,
    device: Annotated[str, typer.Option(help="Torch device: cpu or cuda.")] = "cpu",
    cache_dir: Annotated[Path | None, typer.Option(
        help="Model cache (default: $MIAUDIT_CACHE or ~/.cache/miaudit)."
    )] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Train every model, store nothing."
    )] = False,
    executor: Annotated[str, typer.Option(
        help="Where models train: inprocess, process (local pool) or ray."
    )] = "inprocess",
    workers: Annotated[int | None, typer.Option(help="Workers for process/ray executors.")
                       ] = None,
    ray_address: Annotated[str | None, typer.Option(
        help="Ray cluster address (default: start a local Ray)."
    )] = None,
    models_per_batch: Annotated[int, typer.Option(
        help="Models trained together in one batched computation."
    )] = 32,
    augment: Annotated[bool | None, typer.Option(
        "--augment/--no-augment",
        help="Query flipped and shifted copies too (image recipes; default on for cnn)."
    )] = None,
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: summary.json on stdout."
    )] = OutputFormat.text,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train (or load) a target model and audit it with membership-inference attacks."""
    from miaudit.orchestration import audit
    from miaudit.orchestration.cache import default_cache_dir
    from miaudit.orchestration.result import check_out_dir
    from miaudit.report import print_summary

    out_dir = out or _default_out(data if outputs is None else str(outputs), model)
    check_out_dir(out_dir, overwrite=overwrite)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)  # shown in the summary instead
        result = audit(
            data=data, label_column=label_column, id_column=id_column, n_records=n_records,
            model=model,
            model_params=param,
            outputs=outputs, exposure=exposure, attacks=_split_list(attacks), seed=seed,
            references=references, reference_mode=reference_mode, targets=targets,
            lira_variance=lira_variance,
            rmia_gamma=rmia_gamma, rmia_temperature=rmia_temperature,
            cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
            executor=executor, workers=workers, ray_address=ray_address,
            models_per_batch=models_per_batch, augment=augment,
            alpha=alpha, prior=prior, device=device,
            progress=not quiet and sys.stderr.isatty(),
        )
    saved = result.save(out_dir, overwrite=overwrite)
    if format is OutputFormat.json:
        print(json.dumps(result.summary(), indent=2))
        return
    print_summary(result.summary(), out_console, run_dir=str(saved))
    err_console.print(f"[dim]done in {time.perf_counter() - started:.1f} s[/]")


@app.command("attacks")
@_friendly
def list_attacks() -> None:
    """List the attacks, what each needs, and the exposures that allow it."""
    from miaudit.attacks import ATTACKS
    from miaudit.signals import parse_exposure

    probes = ["logits", "probabilities", "rounded:2", "top-k:3", "label", "loss"]
    table = Table(title="attacks (score: higher = more likely a member)", title_justify="left")
    for col in ("name", "needs", "allowed under", "description", "reference"):
        table.add_column(col)
    for a in ATTACKS.values():
        allowed = [p.split(":")[0] for p in probes if a.allowed_by(parse_exposure(p))]
        table.add_row(a.name, ", ".join(sorted(a.needs)), ", ".join(allowed), a.description,
                      a.reference)
    out_console.print(table)


@app.command("datasets")
@_friendly
def list_datasets() -> None:
    """List the built-in data sets (any .npz/.csv/.parquet path works too)."""
    from miaudit.data import BUILTIN_DATASETS

    for name in BUILTIN_DATASETS:
        out_console.print(name)


@app.command("recipes")
@_friendly
def list_recipes() -> None:
    """List the model recipes and their default parameters."""
    from miaudit.models import RECIPES

    for recipe in RECIPES.values():
        out_console.print(f"[bold]{recipe.name}[/]: {recipe.describe()}", highlight=False)
