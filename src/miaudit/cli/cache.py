"""The ``cache`` commands: what the model cache holds, and removing what is no longer
needed (damaged entries, leftovers of killed writes, models unused for N days)."""

# No "from __future__ import annotations": typer reads the commands' annotations.
import json
from datetime import datetime
from typing import Annotated

import typer

import miaudit.cli.options as opt
from miaudit.cli.common import OutputFormat, examples_epilog, friendly, out_console

__all__ = ["register"]

_LABELS = {"entries": "stored models", "scores": "stored token scores (language models)",
           "damaged": "damaged entries (set aside)",
           "temporary": "leftovers of killed writes", "checkpoints": "training checkpoints",
           "other": "other (HTTP answers)"}


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _table(usage: dict, title: str):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title), title_justify="left")
    for col, justify in (("kind", "left"), ("items", "right"), ("size", "right")):
        table.add_column(col, justify=justify)
    for kind, label in _LABELS.items():
        table.add_row(label, str(usage["counts"][kind]), _size(usage["bytes"][kind]))
    table.add_row("[bold]total[/]", str(sum(usage["counts"].values())),
                  _size(sum(usage["bytes"].values())))
    return table


def _when(ts: float | None) -> str:
    return "-" if ts is None else f"{datetime.fromtimestamp(ts):%Y-%m-%d %H:%M}"


def _root(cache_dir):
    from miaudit.defaults import default_cache_dir

    return cache_dir or default_cache_dir()


@friendly
def cache_info(cache_dir: opt.CacheDir = None, format: opt.Format = OutputFormat.text
               ) -> None:
    """What the model cache holds: stored models, damaged entries, leftovers of killed
    writes, training checkpoints, with their sizes."""
    from miaudit.training.cache import cache_usage

    usage = cache_usage(_root(cache_dir)).to_dict()
    if format is OutputFormat.json:
        print(json.dumps(usage, indent=2))
        return
    out_console.print(_table(usage, f"Model cache {usage['root']}"))
    out_console.print(f"stored models last used between {_when(usage['oldest_use'])} and "
                      f"{_when(usage['newest_use'])}", highlight=False)


@friendly
def cache_prune(
    cache_dir: opt.CacheDir = None,
    older_than: Annotated[float | None, typer.Option(
        help="Also remove stored models and checkpoints not used for this many days.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would be removed; remove nothing.")] = False,
    format: opt.Format = OutputFormat.text,
) -> None:
    """Remove damaged entries and leftovers of killed writes (older than an hour) and,
    with --older-than, models and checkpoints unused for that many days."""
    from miaudit.training.cache import prune_cache

    removed = prune_cache(_root(cache_dir), older_than_days=older_than,
                          dry_run=dry_run).to_dict()
    if format is OutputFormat.json:
        print(json.dumps({**removed, "dry_run": dry_run}, indent=2))
        return
    verb = "would remove" if dry_run else "removed"
    out_console.print(_table(removed, f"{verb.capitalize()} from {removed['root']}"))


def register(app: typer.Typer) -> None:
    """Add ``cache-info`` and ``cache-prune`` (``miaudit cache info|prune``) to ``app``."""
    app.command("cache-info", epilog=examples_epilog([
        "miaudit cache info", "miaudit cache info --cache-dir /data/miaudit-cache "
        "--format json"]))(cache_info)
    app.command("cache-prune", epilog=examples_epilog([
        "miaudit cache prune --dry-run", "miaudit cache prune --older-than 30"]))(cache_prune)
