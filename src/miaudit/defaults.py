"""The defaults and the choices of an audit's settings, as plain constants.

:mod:`miaudit.config` declares and validates every setting with these; they live apart so
that the command line can show them in ``--help`` without importing pydantic.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

ReferenceMode = Literal["online", "offline"]
LiraVariance = Literal["auto", "global", "per-example"]
QuantileMethod = Literal["gaussian", "pinball"]
Executor = Literal["inprocess", "process", "ray"]

REFERENCE_MODES: tuple[str, ...] = get_args(ReferenceMode)
LIRA_VARIANCES: tuple[str, ...] = get_args(LiraVariance)
QUANTILE_METHODS: tuple[str, ...] = get_args(QuantileMethod)
EXECUTORS: tuple[str, ...] = get_args(Executor)

#: What the attacker sees of the target unless told otherwise.
DEFAULT_EXPOSURE = "logits"
#: 1 - confidence level of every interval.
DEFAULT_ALPHA = 0.05
#: Prior probability of membership (for the PPV).
DEFAULT_PRIOR = 0.5
#: The delta of the epsilon lower bound.
DEFAULT_DELTA = 1e-5
#: Cross-fitting folds of the oracle attacks.
DEFAULT_CALIBRATION_FOLDS = 5
#: FPR levels at which every attack's TPR is reported.
DEFAULT_FPRS = (0.01, 0.001, 0.0001)
#: The recipe trained as the target (and as the references) unless another is named.
DEFAULT_RECIPE = "mlp"
#: Models trained together in one batched computation.
DEFAULT_MODELS_PER_BATCH = 32
#: Seconds between two checkpoints of a batched training run (see miaudit.training.checkpoint).
CHECKPOINT_SECONDS = 10.0
#: Share of a recipe game's pool set aside as population data.
POPULATION_FRACTION = 0.1
#: Most population data a game may set aside.
MAX_POPULATION_FRACTION = 0.5
#: Most targets of an offline game (an online game: its number of models).
MAX_OFFLINE_TARGETS = 64

#: The environment variable naming the model cache folder.
CACHE_ENV_VAR = "MIAUDIT_CACHE"


def default_cache_dir() -> Path:
    """The model cache the library and the command line share: ``$MIAUDIT_CACHE``, else
    ``$XDG_CACHE_HOME/miaudit``, else ``~/.cache/miaudit``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "miaudit"
