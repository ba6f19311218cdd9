"""The options the commands share, declared once: one name, one help text, one set of
choices, and the defaults of :mod:`miaudit.defaults` (the ones :class:`miaudit.config.
AuditConfig` uses), so that ``run``, ``compare-exposures``, ``sweep`` and ``spec run`` spell
a setting the same way.

Each is an ``Annotated`` type for a command's parameter; the default goes in the command's
signature (``references: options.References = 0``). Options carry the panel of ``run
--help`` they belong to. Choices are ``Literal`` types, which typer checks and lists.
"""

# No ``from __future__ import annotations``: typer reads these annotations at run time.

from pathlib import Path
from typing import Annotated, Literal

import typer

from miaudit.cli.common import OutputFormat
from miaudit.defaults import Executor as ExecutorChoice
from miaudit.defaults import LiraVariance as LiraVarianceChoice
from miaudit.defaults import QuantileMethod as QuantileMethodChoice
from miaudit.defaults import ReferenceMode as ReferenceModeChoice

__all__ = ["Alpha", "Attacks", "Augment", "CacheDir", "CheckpointSeconds", "Data", "Device",
           "Executor", "Exposure",
           "Format", "IdColumn", "LabelColumn", "LiraVariance", "Model", "ModelsPerBatch",
           "NRecords", "NoAugment", "NoCache", "NoRegistry", "Out", "Overwrite", "Param",
           "PopulationFraction", "Prior", "QuantileMethod", "QueryBudget", "Quiet", "RayAddress",
           "ReferenceMode", "References", "Registry", "RmiaTemperature", "Seed", "Targets",
           "Workers", "augment_setting"]

DATA, TARGET, ATTACKS, REFERENCES, METRICS, COMPUTE, OUTPUT = (
    "Data", "Target", "Attacks", "References", "Metrics", "Compute", "Output")


def _opt(panel: str, *names: str, **kwargs):
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


# -- data
Data = Annotated[str | None, _opt(
    DATA, help="Built-in name (digits, breast_cancer, wine) or a .npz/.csv/.csv.gz/.parquet "
    "file.")]
LabelColumn = Annotated[str | None, _opt(DATA, help="Label column of a CSV/Parquet file.")]
IdColumn = Annotated[str | None, _opt(
    DATA, help="Record-ID column of a CSV/Parquet file (not used as a feature).")]
NRecords = Annotated[int | None, _opt(
    DATA, help="Use a seeded, class-stratified subset of this many records.")]
Seed = Annotated[int, _opt(DATA, help="Seed of the split, training and folds.")]

# -- target
Model = Annotated[str, _opt(
    TARGET, help="Recipe to train as the target (mlp, logistic or cnn for images), a "
    "model file to audit (.onnx, .skops), or an MLflow model (models:/NAME/VERSION, "
    "runs:/ID/PATH, a folder with an MLmodel file; loading runs its code); a file or an "
    "MLflow model needs --members.")]
Param = Annotated[list[str] | None, _opt(
    TARGET, "--param", "-p", help="Recipe parameter key=value, repeatable (e.g. -p epochs=20 "
    "-p hidden=128,64).")]

# -- attacks
Attacks = Annotated[str | None, _opt(
    ATTACKS, help="Comma-separated attacks (see 'miaudit attacks'); default: all the "
    "exposure allows.")]
Exposure = Annotated[str, _opt(
    ATTACKS, help="What the attacker sees: logits, probabilities, top-k:K, rounded:D, label, "
    "loss, or probabilities after a defence: temperature:T, noise:SIGMA, memguard:EPS. "
    "Several, comma-separated, are compared (exposures.json).")]
QueryBudget = Annotated[int | None, _opt(
    ATTACKS, help="Most queries each label-only attack may send to each target.")]

# -- references
References = Annotated[int, _opt(
    REFERENCES, help="Reference models to train with the target (enables LiRA, RMIA, "
    "Attack-R, Shokri).")]
ReferenceMode = Annotated[ReferenceModeChoice, _opt(
    REFERENCES, help="online: references train on halves of the audited records; offline: "
    "on separate population records only.")]
Targets = Annotated[int, _opt(
    REFERENCES, help="With references: models that take the target's role in turn "
    "(pooled).")]
LiraVariance = Annotated[LiraVarianceChoice, _opt(
    REFERENCES, help="LiRA's variance: auto (global below 64 references), global or "
    "per-example.")]
RmiaTemperature = Annotated[float | None, _opt(
    REFERENCES, help="Softmax temperature of RMIA's Pr(x|model) (default: tuned on the "
    "references).")]
QuantileMethod = Annotated[QuantileMethodChoice, _opt(
    ATTACKS, help="The quantile attack's regression: gaussian (a mean and a spread per "
    "record) or pinball (the 99% quantile itself).")]
PopulationFraction = Annotated[float, _opt(
    REFERENCES, help="Share of the pool set aside as population data (attack-p, RMIA).")]
Augment = Annotated[Literal["auto", "on", "off"], _opt(
    REFERENCES, help="Query flipped and shifted copies too (image recipes; auto: on for cnn "
    "with references).")]
NoAugment = Annotated[bool, _opt(REFERENCES, "--no-augment", hidden=True,
                                 help="The same as --augment off.")]


def augment_setting(augment: str, no_augment: bool = False) -> bool | None:
    """``--augment auto|on|off`` (and the older ``--no-augment``) as the ``augment``
    setting: None (the recipe decides), True or False."""
    return False if no_augment else {"auto": None, "on": True, "off": False}[augment]

# -- metrics
Alpha = Annotated[float, _opt(METRICS, help="1 - confidence level of the intervals.")]
Prior = Annotated[float, _opt(METRICS, help="Membership prior for the PPV.")]

# -- compute
Device = Annotated[str, _opt(COMPUTE, help="Torch device: cpu, cuda, cuda:N or mps.")]
CacheDir = Annotated[Path | None, _opt(
    COMPUTE, help="Model cache (default: $MIAUDIT_CACHE or ~/.cache/miaudit, as in the "
    "Python API).")]
CheckpointSeconds = Annotated[float, _opt(
    COMPUTE, help="With the cache: seconds between two checkpoints of a batched training "
    "run, the most a killed run loses.")]
NoCache = Annotated[bool, _opt(COMPUTE, "--no-cache", help="Train every model, store "
                               "nothing.")]
Executor = Annotated[ExecutorChoice, _opt(
    COMPUTE, help="Where models train: here (inprocess), a local pool (process) or Ray.")]
Workers = Annotated[int | None, _opt(COMPUTE, help="Workers for process/ray executors.")]
RayAddress = Annotated[str | None, _opt(
    COMPUTE, help="Ray cluster address (default: start a local Ray).")]
ModelsPerBatch = Annotated[int, _opt(
    COMPUTE, help="Models trained together in one batched computation (lower it to save "
    "memory).")]

# -- output
Out = Annotated[Path | None, _opt(OUTPUT, help="Run folder (default: runs/<time>-<name>).")]
Overwrite = Annotated[bool, _opt(OUTPUT, "--overwrite", help="Replace the run folder of a "
                                 "previous run.")]
Format = Annotated[OutputFormat, _opt(
    OUTPUT, "--format", help="text: tables on stdout; json: the result as JSON on stdout.")]
Quiet = Annotated[bool, _opt(OUTPUT, "--quiet", help="No progress bars.")]
Registry = Annotated[str | None, _opt(
    OUTPUT, help="Registry URL to record the run in (default: $MIAUDIT_REGISTRY or a SQLite "
    "file under ~/.local/share/miaudit; postgresql://... works too).")]
NoRegistry = Annotated[bool, _opt(OUTPUT, "--no-registry", help="Record nothing.")]
