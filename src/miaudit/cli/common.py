"""What every command of the ``miaudit`` command line shares: the consoles, the error
wrapper, the output-format choice, defaults, and the lookup of a RUN argument (a run folder
or a run ID of the registry)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from miaudit.errors import DataError, MiauditError

__all__ = ["OutputFormat", "default_out", "err_console", "examples_epilog", "friendly",
           "model_cache", "out_console", "run_folder", "split_list"]

# Piped output is not wrapped at 80 columns: the summary table stays one line per attack.
out_console = Console() if sys.stdout.isatty() else Console(width=160)
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable)


def friendly(fn: F) -> F:
    """Turn known errors into one line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MiauditError as exc:
            if os.environ.get("MIAUDIT_DEBUG"):
                raise
            err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[red]interrupted[/]: nothing was written.")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def split_list(text: str | None) -> list[str] | None:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; None stays None."""
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def examples_epilog(examples: list[str]) -> str:
    """A command's ``--help`` epilog: one example command line per paragraph."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in examples)


def default_out(data: str | None, model: str) -> Path:
    """``runs/<time>-<data>-<model>``: where a run goes without ``--out``."""
    stem = Path(data).name.split(".")[0] if data else "outputs"
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{stem}-{model}"


def model_cache(cache_dir: Path | None, no_cache: bool) -> Path | None:
    """The model cache a command uses: none with ``--no-cache``, else ``--cache-dir`` or
    the default ($MIAUDIT_CACHE or ~/.cache/miaudit)."""
    if no_cache:
        return None
    from miaudit.defaults import default_cache_dir

    return cache_dir or default_cache_dir()


def _registry_lookup(run_id: str) -> Path:
    from miaudit.registry import resolve_run_dir

    return resolve_run_dir(run_id)


#: How a RUN that is not a folder is looked up (a run ID of the default registry); tests
#: replace it.
run_lookup: Callable[[str], Path] = _registry_lookup


def run_folder(run: str) -> Path:
    """The run folder a RUN argument names: the folder itself, else the run ID's folder in
    the registry. Text that reads as a path (it has a separator or starts with a dot) is
    never looked up, so a mistyped folder gets the plain 'not found' error.

    Raises
    ------
    DataError
        No such folder, or the folder holds no ``summary.json``.
    MiauditError
        From the lookup: no registry, or no such run in it.
    """
    from miaudit.results.folder import check_run_folder

    path = Path(run)
    if not path.is_dir():
        if "/" in run or os.sep in run or run.startswith("."):
            raise DataError(f"Run folder not found: {run} (give the folder a 'miaudit run "
                            "--out' wrote, or a run ID from 'miaudit runs').")
        path = Path(run_lookup(run))
    return check_run_folder(path)
