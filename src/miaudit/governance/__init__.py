"""Governance: a policy gate for CI, a model-card section, and a forgetting check.

* :func:`gate` / :func:`evaluate_policy`: pass/fail rules (TOML) over a run's figures;
* :func:`model_card_section`: Markdown "## Privacy: membership inference" for a model card;
* :func:`verify_forget`: do records a model claims to have forgotten still look like members?
  (with a retrained model: :class:`RetrainedComparison`; U-LiRA in :mod:`.ulira`);
* :func:`unlearn`, :func:`shadow_outputs`, ...: unlearning recipes to test that check on.

The command line's ``miaudit gate``, ``miaudit model-card`` and ``miaudit verify-forget``
live in :mod:`miaudit.cli.governance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "CI_WORKFLOW",
    "EXAMPLE_POLICY",
    "MATCHES_RETRAINED",
    "ForgetResult",
    "GateResult",
    "Policy",
    "RetrainedComparison",
    "Rule",
    "RuleResult",
    "escape_markdown",
    "evaluate_policy",
    "finetune",
    "gate",
    "gradient_ascent",
    "load_id_list",
    "load_policy",
    "model_card_section",
    "model_outputs",
    "parse_policy",
    "retrain",
    "shadow_outputs",
    "train_many",
    "unlearn",
    "verify_forget",
]

_WHERE = {
    "CI_WORKFLOW": "policy", "EXAMPLE_POLICY": "policy", "GateResult": "policy",
    "Policy": "policy", "Rule": "policy", "RuleResult": "policy",
    "evaluate_policy": "policy", "gate": "policy", "load_policy": "policy",
    "parse_policy": "policy",
    "escape_markdown": "model_card", "model_card_section": "model_card",
    "ForgetResult": "forget", "load_id_list": "forget", "verify_forget": "forget",
    "MATCHES_RETRAINED": "forget", "RetrainedComparison": "forget",
    "finetune": "unlearning", "gradient_ascent": "unlearning", "model_outputs": "unlearning",
    "retrain": "unlearning", "shadow_outputs": "unlearning", "train_many": "unlearning",
    "unlearn": "unlearning",
}

if TYPE_CHECKING:
    from miaudit.governance.forget import (
        MATCHES_RETRAINED,
        ForgetResult,
        RetrainedComparison,
        load_id_list,
        verify_forget,
    )
    from miaudit.governance.model_card import escape_markdown, model_card_section
    from miaudit.governance.policy import (
        CI_WORKFLOW,
        EXAMPLE_POLICY,
        GateResult,
        Policy,
        Rule,
        RuleResult,
        evaluate_policy,
        gate,
        load_policy,
        parse_policy,
    )
    from miaudit.governance.unlearning import (
        finetune,
        gradient_ascent,
        model_outputs,
        retrain,
        shadow_outputs,
        train_many,
        unlearn,
    )


def __getattr__(name: str):
    # Imported on first use: the command line stays fast to start (no pydantic, pandas).
    if name in _WHERE:
        module = importlib.import_module(f"miaudit.governance.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'miaudit.governance' has no attribute {name!r}")
