"""Models: training recipes, adapters over existing models, and their raw outputs."""

from miaudit.models.adapters import (
    CallableTarget,
    LabelTarget,
    PrecomputedOutputs,
    SklearnTarget,
    Target,
    TorchTarget,
    as_target,
    load_outputs,
)
from miaudit.models.batched import predict_stacked, stacked_state_dicts, train_batched
from miaudit.models.nets import build_module
from miaudit.models.outputs import ModelOutputs, check_outputs
from miaudit.models.recipes import (
    RECIPES,
    Recipe,
    TrainedModel,
    make_recipe,
)
from miaudit.models.training import train

__all__ = [
    "RECIPES",
    "CallableTarget",
    "LabelTarget",
    "ModelOutputs",
    "PrecomputedOutputs",
    "Recipe",
    "SklearnTarget",
    "Target",
    "TorchTarget",
    "TrainedModel",
    "as_target",
    "build_module",
    "check_outputs",
    "load_outputs",
    "make_recipe",
    "predict_stacked",
    "stacked_state_dicts",
    "train",
    "train_batched",
]
