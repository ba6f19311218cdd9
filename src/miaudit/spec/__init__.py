"""Audit specs: a TOML or YAML file that describes an audit, to review, version and re-run.

>>> from miaudit.spec import load_spec, run_spec
>>> spec = load_spec("audit.toml")  # doctest: +SKIP
>>> result, run_dir = run_spec(spec, "runs/audit")  # doctest: +SKIP

A spec has the sections ``[data]`` (``source``, ``label_column``, ``id_column``,
``n_records``; ``text_column``, ``member_column`` for texts), ``[target]`` (``task``,
``recipe``, ``params``, ``outputs``; ``model`` for language models), ``[audit]`` (the
game and the measurement: ``exposure``, ``attacks``, ``references``, ``seed``, ``fprs``,
...), ``[training]`` (``device``, ``executor``, ...), ``[lm]`` (``task = "lm"`` only) and
``[thresholds]`` (policy thresholds carried with the run); see :class:`AuditSpec`.

Names are imported on first use, so that ``import miaudit.spec`` stays light (the command
line's ``spec-check``, ``run-spec`` and ``rerun`` live in :mod:`miaudit.cli.spec`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["SPEC_FORMATS", "AuditSpec", "SpecError", "SpecProblem", "load_spec",
           "parse_spec", "rerun", "run_spec",
           "spec_from_run", "spec_from_summary"]

_HOME = {
    "SPEC_FORMATS": "loading", "load_spec": "loading", "parse_spec": "loading",
    "rerun": "running", "run_spec": "running", "spec_from_run": "running",
    "spec_from_summary": "running",
    "AuditSpec": "schema", "SpecError": "schema", "SpecProblem": "schema",
}

if TYPE_CHECKING:
    from miaudit.spec.loading import SPEC_FORMATS, load_spec, parse_spec
    from miaudit.spec.running import rerun, run_spec, spec_from_run, spec_from_summary
    from miaudit.spec.schema import AuditSpec, SpecError, SpecProblem


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"miaudit.spec.{_HOME[name]}"), name)
    raise AttributeError(f"module 'miaudit.spec' has no attribute {name!r}")
