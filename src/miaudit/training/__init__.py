"""Training the models of a game: recipes (plain configuration), their networks, one model
(:func:`train`), many at once in one batched computation (:mod:`~miaudit.training.
batched`), DP-SGD (:mod:`~miaudit.training.dp`), the tiny GPT-2 recipe (:mod:`~miaudit.
training.lm`), the content-addressed model cache (:mod:`~miaudit.training.cache`) and the
executors that spread chunks of models (:mod:`~miaudit.training.executors`)."""

from miaudit.training.batched import predict_stacked, stacked_state_dicts, train_batched
from miaudit.training.nets import build_module
from miaudit.training.recipes import RECIPES, Recipe, TrainedModel, make_recipe
from miaudit.training.single import train

__all__ = [
    "RECIPES",
    "Recipe",
    "TrainedModel",
    "build_module",
    "make_recipe",
    "predict_stacked",
    "stacked_state_dicts",
    "train",
    "train_batched",
]
