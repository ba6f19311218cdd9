"""The ``dataset-inference`` command of ``miaudit``: was this set of texts used to train a
causal language model? (:func:`miaudit.audits.dataset_inference.dataset_inference`)

Add it to the typer app with :func:`register`.

Exit codes
----------
0: the test ran (with ``--strict``: and found no evidence that the suspect set was used);
1: with ``--strict``, the suspect set was used in training; 2: bad input (a missing file or
model, too few texts, an empty text, overlap with ``--overlap error``) or a usage error.

``MIAUDIT_DEBUG=1`` shows the traceback of an error instead of one line.
"""

# No ``from __future__ import annotations`` here: typer reads the annotations of the
# command, which refer to names imported here.

import json
import os
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from miaudit.cli.common import OutputFormat, err_console, out_console, split_list
from miaudit.errors import MiauditError, MiauditWarning, UndefinedMetricWarning

__all__ = ["dataset_inference_command", "register"]


class Overlap(StrEnum):
    drop = "drop"
    error = "error"


def _table(result):
    from rich.table import Table

    test = result.test
    table = Table(title=f"Dataset inference: {result.counts['n_suspect']} suspect vs "
                        f"{result.counts['n_validation']} validation texts, "
                        f"{test.splits} split(s) (held-out halves: "
                        f"{test.n_test[0]} and {test.n_test[1]} texts)",
                  title_justify="left")
    for col in ("split", "p (Welch, one-sided)", "t", "AUC [95% CI]", "texts-only p"):
        table.add_column(col, justify="right")
    for k in range(test.splits):
        lo, hi = test.auc_cis[k]
        mark = " *" if k == test.median_split else ""
        table.add_row(f"{k}{mark}", f"{test.split_p_values[k]:.3g}",
                      f"{test.t_statistics[k]:.2f}",
                      f"{test.aucs[k]:.3f} [{lo:.3f}, {hi:.3f}]",
                      f"{result.shift.split_p_values[k]:.3g}")
    return table


def _weights(result, top: int = 5) -> str:
    weights = result.test.weights.mean(axis=0)
    order = sorted(range(len(weights)), key=lambda j: -abs(weights[j]))[:top]
    return ", ".join(f"{result.feature_names[j]} {weights[j]:+.2f}" for j in order)


def _load(path: Path, text_column: str | None, role: str) -> list[str]:
    from miaudit.data import load_texts

    spec = None if text_column is None else (
        text_column if "," not in text_column else split_list(text_column))
    try:
        return load_texts(path, text_column=spec).texts
    except MiauditError as exc:
        raise type(exc)(f"--{role}: {exc}") from exc


def dataset_inference_command(
    suspect: Annotated[Path, typer.Option(
        help="Texts that may have been trained on (.jsonl, .csv(.gz), .tsv or .txt, one "
        "text per line)."
    )],
    validation: Annotated[Path, typer.Option(
        help="Texts of the same distribution that the model never trained on (same "
        "formats)."
    )],
    model: Annotated[str, typer.Option(
        help="Local model folder (save_pretrained, safetensors)."
    )],
    reference_model: Annotated[str | None, typer.Option(
        help="Local reference model folder, not trained on the suspect texts (adds the "
        "'reference' feature)."
    )] = None,
    text_column: Annotated[str | None, typer.Option(
        help="Text column of both files (name or position; '1,2' joins columns with '. ')."
    )] = None,
    alpha: Annotated[float, typer.Option(help="Level of the test.")] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the splits.")] = 0,
    splits: Annotated[int, typer.Option(
        help="Random splits, combined with Bonferroni (1: the paper's single split)."
    )] = 5,
    overlap: Annotated[Overlap, typer.Option(
        help="Validation texts also in the suspect set: drop them (with a warning) or "
        "refuse."
    )] = Overlap.drop,
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:N or mps.")
                      ] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 8,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when the suspect set was used in training."
    )] = False,
    format: Annotated[OutputFormat, typer.Option(
        "--format", help="text: a table on stdout; json: the result on stdout."
    )] = OutputFormat.text,
) -> None:
    """Was this set of texts used to train a causal language model? A p-value from
    dataset inference (Maini et al. 2024), with a check that the two sets come from one
    distribution."""
    import sys

    from miaudit.audits.dataset_inference import dataset_inference

    def run():
        return dataset_inference(
            model, _load(suspect, text_column, "suspect"),
            _load(validation, text_column, "validation"), reference_model=reference_model,
            seed=seed, alpha=alpha, splits=splits, overlap=overlap.value, device=device,
            batch_size=batch_size, progress=sys.stderr.isatty())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = run()
        except MiauditError as exc:
            if os.environ.get("MIAUDIT_DEBUG"):
                raise
            err_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(2) from None
    seen: list[str] = []
    for w in caught:
        if (issubclass(w.category, MiauditWarning)
                and not issubclass(w.category, UndefinedMetricWarning)
                and str(w.message) not in seen):
            seen.append(str(w.message))
            err_console.print(f"[yellow]warning[/] {escape(str(w.message))}",
                              highlight=False, soft_wrap=True)
    if format is OutputFormat.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out_console.print(_table(result))
        out_console.print(f"strongest features (weights per standard deviation, positive = "
                          f"higher in the suspect set): {escape(_weights(result))}",
                          highlight=False)
        shift = ("[bold red]the texts alone tell the sets apart[/]" if result.shift_detected
                 else "the texts alone do not tell the sets apart")
        out_console.print(f"distribution-shift check (model-free text statistics): {shift} "
                          f"(p = {result.shift.p_value:.3g})", highlight=False)
        color = "red" if result.used_in_training else "green"
        out_console.print(f"[bold {color}]{escape(result.headline())}[/]", highlight=False)
    if strict and result.used_in_training:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``dataset-inference`` to the ``miaudit`` typer app."""
    app.command(
        "dataset-inference",
        epilog=(
            "Exit codes: 0 the test ran (--strict: and found no evidence of training on "
            "the suspect set), 1 --strict and the suspect set was used, 2 bad input.\n\n"
            "Examples:\n\n"
            "  miaudit dataset-inference --suspect mine.jsonl --validation heldout.jsonl "
            "--model ./my-gpt2\n\n"
            "  miaudit dataset-inference --suspect news.csv --validation later.csv "
            "--text-column 1,2 --model ./my-gpt2 --reference-model ./base-gpt2 --format "
            "json --strict"
        ),
    )(dataset_inference_command)
