"""Governance: a policy gate for CI, a model-card section, and a forgetting check.

* :func:`gate` / :func:`evaluate_policy`: pass/fail rules (TOML) over a run's figures;
* :func:`model_card_section`: Markdown "## Privacy: membership inference" for a model card;
* :func:`verify_forget`: do records a model claims to have forgotten still look like members?

The command line's ``miaudit gate``, ``miaudit model-card`` and ``miaudit verify-forget``
live in :mod:`miaudit.cli.governance`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "CI_WORKFLOW",
    "EXAMPLE_POLICY",
    "ForgetResult",
    "GateResult",
    "Policy",
    "Rule",
    "RuleResult",
    "escape_markdown",
    "evaluate_policy",
    "gate",
    "load_id_list",
    "load_policy",
    "model_card_section",
    "parse_policy",
    "verify_forget",
]

_WHERE = {
    "CI_WORKFLOW": "policy", "EXAMPLE_POLICY": "policy", "GateResult": "policy",
    "Policy": "policy", "Rule": "policy", "RuleResult": "policy",
    "evaluate_policy": "policy", "gate": "policy", "load_policy": "policy",
    "parse_policy": "policy",
    "escape_markdown": "model_card", "model_card_section": "model_card",
    "ForgetResult": "forget", "load_id_list": "forget", "verify_forget": "forget",
}

if TYPE_CHECKING:
    from miaudit.governance.forget import ForgetResult, load_id_list, verify_forget
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


def __getattr__(name: str):
    # Imported on first use: the command line stays fast to start (no pydantic, pandas).
    if name in _WHERE:
        module = importlib.import_module(f"miaudit.governance.{_WHERE[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'miaudit.governance' has no attribute {name!r}")
