"""The defaults and the choices of an audit's settings, as plain constants.

:mod:`miaudit.config` declares and validates every setting with these; they live apart so
that the command line can show them in ``--help`` without importing pydantic.
"""

from __future__ import annotations

from typing import Literal, get_args

ReferenceMode = Literal["online", "offline"]
LiraVariance = Literal["auto", "global", "per-example"]
Executor = Literal["inprocess", "process", "ray"]

REFERENCE_MODES: tuple[str, ...] = get_args(ReferenceMode)
LIRA_VARIANCES: tuple[str, ...] = get_args(LiraVariance)
EXECUTORS: tuple[str, ...] = get_args(Executor)

#: FPR levels at which every attack's TPR is reported.
DEFAULT_FPRS = (0.01, 0.001, 0.0001)
#: The recipe trained as the target (and as the references) unless another is named.
DEFAULT_RECIPE = "mlp"
#: Models trained together in one batched computation.
DEFAULT_MODELS_PER_BATCH = 32
#: Share of a recipe game's pool set aside as population data.
POPULATION_FRACTION = 0.1
#: Most population data a game may set aside.
MAX_POPULATION_FRACTION = 0.5
#: Most targets of an offline game (an online game: its number of models).
MAX_OFFLINE_TARGETS = 64
