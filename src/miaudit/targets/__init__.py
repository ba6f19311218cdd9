"""The models an audit queries: adapters over existing models (scikit-learn, PyTorch, any
callable, precomputed outputs), models behind an HTTP endpoint (:mod:`~miaudit.targets.
http`), causal language models (:mod:`~miaudit.targets.lm`), and the label-only oracle
that counts queries. Each answers with :class:`~miaudit.targets.outputs.ModelOutputs`."""

from miaudit.targets.adapters import (
    CallableTarget,
    LabelTarget,
    PrecomputedOutputs,
    SklearnTarget,
    Target,
    TorchTarget,
    as_target,
    load_outputs,
)
from miaudit.targets.outputs import ModelOutputs, Query, check_outputs

__all__ = [
    "CallableTarget",
    "LabelTarget",
    "ModelOutputs",
    "PrecomputedOutputs",
    "Query",
    "SklearnTarget",
    "Target",
    "TorchTarget",
    "as_target",
    "check_outputs",
    "load_outputs",
]
