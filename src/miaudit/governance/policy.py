"""Policy gate: pass/fail rules over an audit's figures, for CI pipelines.

A policy is a TOML file of ``[[rule]]`` tables; each rule bounds one figure of the run's
``summary.json`` (for every attack it names) or the record-level risk of its members::

    [[rule]]
    name = "low-FPR leakage"
    metric = "tpr_at_fpr"      # auc | tpr_at_fpr | advantage | epsilon_lower_bound | record_risk
    fpr = 0.001                # the FPR level, for tpr_at_fpr only
    attacks = "*"              # every attack in the run, or a list of names
    use = "upper"              # value (default), upper or lower end of the interval
    max = 0.01

Rules apply to the run's first exposure (``summary["attacks"]``). A figure that the run
could not measure (``null`` in ``summary.json``, such as TPR at 0.1% FPR with fewer than
1,000 non-members) FAILS its rule, with the reason "not measurable at this sample size",
unless the rule sets ``when_unmeasurable = "pass"``: a gate should not pass because the
audit was too small to see the leak. A policy that names an attack, or an FPR level, that
the run does not report is an error, not a failure (the gate cannot be evaluated).

``use = "upper"`` (the upper end of the ``1 - alpha`` interval) is the conservative choice:
the rule passes only when the data rule out a figure above ``max``. It exists for ``auc``
and ``tpr_at_fpr``; ``epsilon_lower_bound`` is already the lower end of a one-sided
interval, and ``advantage`` has none.

``record_risk`` bounds the risk of each member (the share of non-members the strongest
attack scores lower; see :func:`miaudit.audits.exposures.record_risk`), with the
strongest attack chosen as in the exposure comparison. The value used is the highest
member risk, or with ``max_records = K`` the (K+1)-th highest, so the rule passes when at
most ``K`` members have a risk above ``max``. Even with no leakage about
``(1 - max) x members`` members lie above ``max`` by chance (the top member of 500 has a
risk near 0.998), so set ``max_records`` (or ``max``) with that in mind.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from miaudit.errors import ConfigError, DataError
from miaudit.governance.records import member_risks
from miaudit.results.folder import load_run

__all__ = [
    "CI_WORKFLOW",
    "EXAMPLE_POLICY",
    "METRICS",
    "UNMEASURABLE",
    "GateResult",
    "Policy",
    "Rule",
    "RuleResult",
    "evaluate_policy",
    "gate",
    "load_policy",
    "parse_policy",
]

Metric = Literal["auc", "tpr_at_fpr", "advantage", "epsilon_lower_bound", "record_risk"]
#: The figures a rule can bound.
METRICS: tuple[str, ...] = ("auc", "tpr_at_fpr", "advantage", "epsilon_lower_bound",
                            "record_risk")
#: The reason given when a rule's figure is null in the run.
UNMEASURABLE = "not measurable at this sample size"
#: An example policy (tested to load).
EXAMPLE_POLICY = Path(__file__).with_name("example_policy.toml")

_INTERVALS = {"auc": "auc_ci", "tpr_at_fpr": "tpr_at_fpr_ci"}
_FRACTIONS = {"auc", "tpr_at_fpr", "advantage", "record_risk"}

#: A GitHub Actions workflow that audits a model and gates the merge on a policy.
CI_WORKFLOW = """\
# .github/workflows/privacy-gate.yml
name: privacy gate
on: [pull_request]
jobs:
  membership-inference:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install miaudit with CPU PyTorch
        run: |
          pip install torch --index-url https://download.pytorch.org/whl/cpu
          pip install "miaudit[torch]"
      - name: Audit the model
        run: >
          miaudit run --data data/train.csv --label-column label --model mlp
          --seed 0 --out run --quiet --no-cache
      - name: Gate on the privacy policy (exit 1 = a rule failed, 2 = bad policy or run)
        run: miaudit gate run --policy policy.toml
      - name: Model card section
        if: always()
        run: miaudit model-card run --out privacy.md
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: membership-inference-audit
          path: |
            run/
            privacy.md
"""


class Rule(BaseModel):
    """One ``[[rule]]`` of a policy: ``metric`` (of ``attacks``) must be at most ``max``.

    Attributes
    ----------
    name : str, optional
        Shown in the report (default: the metric and its settings).
    metric : {"auc", "tpr_at_fpr", "advantage", "epsilon_lower_bound", "record_risk"}
    fpr : float, optional
        The FPR level of ``tpr_at_fpr`` (required there, refused elsewhere); one of the
        levels the run reports (``settings.fprs``, default 0.01, 0.001, 0.0001).
    attacks : "*" or list of str, default "*"
        The attacks the rule applies to, each checked on its own (``record_risk``: the
        strongest of them). A single name is read as a list of one.
    use : {"value", "upper", "lower"}, default "value"
        The figure itself or an end of its interval (``auc`` and ``tpr_at_fpr`` only).
    max : float
        The largest value that passes (a fraction in [0, 1] except for epsilon).
    max_records : int, default 0
        ``record_risk`` only: members allowed above ``max``.
    when_unmeasurable : {"fail", "pass"}, default "fail"
        The outcome when the figure is null in the run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    metric: Metric
    fpr: float | None = Field(default=None, validate_default=True)
    attacks: Literal["*"] | list[str] = "*"
    use: Literal["value", "upper", "lower"] = Field(default="value", validate_default=True)
    max: float
    max_records: int = Field(default=0, ge=0)
    when_unmeasurable: Literal["fail", "pass"] = "fail"

    @field_validator("fpr")
    @classmethod
    def _check_fpr(cls, v: float | None, info: ValidationInfo) -> float | None:
        metric = info.data.get("metric")
        if metric == "tpr_at_fpr" and v is None:
            raise ValueError("required with metric 'tpr_at_fpr' (for example fpr = 0.001)")
        if metric is not None and metric != "tpr_at_fpr" and v is not None:
            raise ValueError(f"applies to metric 'tpr_at_fpr' only, not {metric!r}")
        if v is not None and not 0 < v < 1:
            raise ValueError("must lie strictly between 0 and 1 (0.001 is 0.1%)")
        return v

    @field_validator("attacks", mode="before")
    @classmethod
    def _check_attacks(cls, v: Any) -> Any:
        if isinstance(v, str):
            return v if v.strip() == "*" else [v]
        if not isinstance(v, list) or not v or not all(isinstance(a, str) and a.strip()
                                                       for a in v):
            raise ValueError('must be "*" or a non-empty list of attack names, '
                             'such as ["loss", "mentr"]')
        names = [a.strip() for a in v]
        if len(set(names)) < len(names):
            raise ValueError("lists an attack more than once")
        return names

    @field_validator("use")
    @classmethod
    def _check_use(cls, v: str, info: ValidationInfo) -> str:
        metric = info.data.get("metric")
        if v != "value" and metric is not None and metric not in _INTERVALS:
            raise ValueError(f"{v!r} needs an interval, and metric {metric!r} has none; "
                             'use = "value"')
        return v

    @field_validator("max")
    @classmethod
    def _check_max(cls, v: float, info: ValidationInfo) -> float:
        metric = info.data.get("metric")
        if not math.isfinite(v) or v < 0:
            raise ValueError("must be a finite number >= 0")
        if metric in _FRACTIONS and v > 1:
            raise ValueError(f"must be a fraction in [0, 1] for metric {metric!r} "
                             f"(write {v / 100:g} for {v:g}%)")
        return v

    @field_validator("max_records")
    @classmethod
    def _check_max_records(cls, v: int, info: ValidationInfo) -> int:
        metric = info.data.get("metric")
        if v and metric is not None and metric != "record_risk":
            raise ValueError(f"applies to metric 'record_risk' only, not {metric!r}")
        return v

    @property
    def label(self) -> str:
        """The rule's name, or a description of what it bounds."""
        if self.name:
            return self.name
        parts = [self.metric + (f"@{self.fpr:g}" if self.fpr is not None else "")]
        if self.use != "value":
            parts.append(f"({self.use})")
        return " ".join(parts)


class Policy(BaseModel):
    """A parsed policy file: an optional ``name`` and ``description``, and its rules.

    Examples
    --------
    >>> p = parse_policy('[[rule]]\\nmetric = "auc"\\nuse = "upper"\\nmax = 0.6\\n')
    >>> p.rules[0].metric, p.rules[0].attacks, p.rules[0].max
    ('auc', '*', 0.6)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: str | None = None
    description: str | None = None
    rules: list[Rule] = Field(alias="rule", min_length=1)


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one attack (``record_risk``: on the strongest attack).

    Attributes
    ----------
    index : int
        The rule's position in the policy file (1 = first ``[[rule]]``).
    rule : Rule
    attack : str or None
    figure : str
        What was compared, in words (``"TPR at 0.1% FPR, upper end of 95% interval"``).
    value : float or None
        The figure used; None when not measurable.
    limit : float
        The rule's ``max``.
    passed : bool
    reason : str or None
        Why the figure is missing, when it is (``"not measurable at this sample size
        (...)"``).
    detail : str or None
        More facts (for ``record_risk``: how many members exceed ``max``).
    """

    index: int
    rule: Rule
    attack: str | None
    figure: str
    value: float | None
    limit: float
    passed: bool
    reason: str | None = None
    detail: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"rule": self.index, "name": self.rule.label, "metric": self.rule.metric,
                "fpr": self.rule.fpr, "use": self.rule.use, "attack": self.attack,
                "figure": self.figure, "value": self.value, "limit": self.limit,
                "passed": self.passed, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class GateResult:
    """Every rule's outcome on a run; ``passed`` when all passed.

    Attributes
    ----------
    run : str
        The run folder.
    policy : str
        The policy file.
    policy_name : str or None
    results : list of RuleResult
    passed : bool
    """

    run: str
    policy: str
    policy_name: str | None
    results: list[RuleResult]
    passed: bool

    @property
    def n_failed(self) -> int:
        """Number of failed checks."""
        return sum(not r.passed for r in self.results)

    def to_dict(self) -> dict:
        """JSON-ready fields (what ``miaudit gate --format json`` prints)."""
        return {"run": self.run, "policy": self.policy, "policy_name": self.policy_name,
                "passed": self.passed, "n_checks": len(self.results),
                "n_failed": self.n_failed, "results": [r.to_dict() for r in self.results]}


# --- reading a policy --------------------------------------------------------------------

_RULE_HEADER = re.compile(r"^\s*\[\[\s*rule\s*\]\]")
_ANY_HEADER = re.compile(r"^\s*\[")


def _rule_blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, line after the end) of each ``[[rule]]`` block, 1-based."""
    starts = [n for n, line in enumerate(lines, 1) if _RULE_HEADER.match(line)]
    blocks = []
    for start in starts:
        end = next((n for n in range(start + 1, len(lines) + 1)
                    if _ANY_HEADER.match(lines[n - 1])), len(lines) + 1)
        blocks.append((start, end))
    return blocks


def _key_line(lines: list[str], key: str, start: int, end: int) -> int | None:
    pattern = re.compile(rf"""^\s*(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
                         r"\s*=")
    return next((n for n in range(start, end) if pattern.match(lines[n - 1])), None)


def _locate(lines: list[str], loc: tuple) -> int | None:
    """The line of the TOML text a validation error's location points at."""
    if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
        blocks = _rule_blocks(lines)
        if loc[1] >= len(blocks):
            return None
        start, end = blocks[loc[1]]
        if len(loc) >= 3 and isinstance(loc[2], str):
            return _key_line(lines, loc[2], start + 1, end) or start
        return start
    if loc and isinstance(loc[0], str):
        first_table = next((n for n, line in enumerate(lines, 1) if _ANY_HEADER.match(line)),
                           len(lines) + 1)
        found = _key_line(lines, loc[0], 1, first_table)
        if found is None:  # a table header: [rule] instead of [[rule]]
            header = re.compile(rf"^\s*\[+\s*{re.escape(loc[0])}\s*\]+")
            found = next((n for n, line in enumerate(lines, 1) if header.match(line)), None)
        return found
    return None


def _describe_error(err: dict, data: dict, lines: list[str], source: str) -> str:
    loc = tuple(err["loc"])
    line = _locate(lines, loc)
    where = f"{source}, line {line}" if line else source
    msg = err["msg"].removeprefix("Value error, ")
    if loc == ("rule",) and err["type"] == "missing":
        return f"{where}: the policy has no rules; add at least one [[rule]] table."
    if err["type"] == "extra_forbidden" and isinstance(loc[-1], str):
        model = Rule if loc[0] == "rule" else Policy
        known = [f.alias or n for n, f in model.model_fields.items()]
        close = difflib.get_close_matches(loc[-1], known, n=1)
        msg = (f"unknown field ({'did you mean ' + repr(close[0]) + '? ' if close else ''}"
               f"known: {', '.join(known)})")
    parts = []
    if len(loc) >= 2 and loc[0] == "rule" and isinstance(loc[1], int):
        rules = data.get("rule")
        name = None
        if isinstance(rules, list) and loc[1] < len(rules) and isinstance(rules[loc[1]], dict):
            name = rules[loc[1]].get("name")
        parts.append(f"rule {loc[1] + 1}" + (f" ({name!r})" if isinstance(name, str) else ""))
        field = loc[2] if len(loc) >= 3 else None
    else:
        field = loc[0] if loc else None
    if isinstance(field, str):
        parts.append(f"field {field!r}")
    text = ", ".join(parts)
    got = err.get("input")
    shown = ("" if err["type"] in ("missing", "extra_forbidden")
             or got is None or isinstance(got, dict) else f" (got {got!r})")
    return f"{where}: {text + ': ' if text else ''}{msg}{shown}."


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Parse and validate the TOML text of a policy.

    Parameters
    ----------
    text : str
        The policy (see the module docstring).
    source : str, default "<policy>"
        The name errors give (the file's path).

    Returns
    -------
    Policy

    Raises
    ------
    ConfigError
        Invalid TOML, or the first invalid rule field, naming the file, the line, the rule
        (1 = first ``[[rule]]``) and the field.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}.") from None
    except RecursionError:
        raise ConfigError(f"{source}: the TOML nests arrays or tables too deeply to read "
                          "(a policy needs two levels).") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        # an unknown key first: it is usually a typo that also leaves a field missing
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = _describe_error(errors[0], data, text.splitlines(), source)
        more = len(errors) - 1
        if more:
            first = first[:-1] + f"; and {more} more problem{'s' if more > 1 else ''}."
        raise ConfigError(first) from None


def load_policy(path: str | Path) -> Policy:
    """Read a policy file (see :func:`parse_policy`).

    Examples
    --------
    >>> [r.metric for r in load_policy(EXAMPLE_POLICY).rules][:2]
    ['auc', 'tpr_at_fpr']
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"Policy file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the policy file {p}: {exc}") from None
    return parse_policy(text, source=str(p))


# --- evaluating it -----------------------------------------------------------------------


def _fpr_key(entries: dict[str, dict], fpr: float, index: int) -> str:
    levels = sorted({k for e in entries.values() for k in e.get("tpr_at_fpr", {})}, key=float,
                    reverse=True)
    for key in levels:
        if math.isclose(float(key), fpr, rel_tol=1e-9):
            return key
    raise ConfigError(f"Rule {index} asks for TPR at FPR {fpr:g}, but the run reports FPR "
                      f"{', '.join(levels) or 'none'} only; change the rule's fpr.")


def _figure(rule: Rule, key: str | None, confidence: int) -> str:
    if rule.metric == "tpr_at_fpr":
        text = f"TPR at {100 * float(key):g}% FPR"
    else:
        text = {"auc": "AUC", "advantage": "advantage",
                "epsilon_lower_bound": "epsilon lower bound"}[rule.metric]
    if rule.use != "value":
        text += f", {rule.use} end of {confidence}% interval"
    return text


def _attack_result(index: int, rule: Rule, attack: str, entry: dict, key: str | None,
                   confidence: int) -> RuleResult:
    if rule.metric == "tpr_at_fpr":
        value, ci = entry["tpr_at_fpr"].get(key), entry["tpr_at_fpr_ci"].get(key)
        why = [f"tpr_at_fpr.{key}", f"tpr_at_fpr_ci.{key}"]
    else:
        value, ci = entry.get(rule.metric), entry.get(_INTERVALS.get(rule.metric, ""))
        why = [rule.metric, _INTERVALS.get(rule.metric, "")]
    if rule.use != "value":
        value = None if ci is None else ci[1 if rule.use == "upper" else 0]
    figure = _figure(rule, key, confidence)
    if value is None:
        undefined = entry.get("undefined", {})
        cause = next((undefined[k] for k in why if k in undefined), None)
        reason = UNMEASURABLE + (f" ({cause})" if cause else "")
        return RuleResult(index, rule, attack, figure, None, rule.max,
                          rule.when_unmeasurable == "pass", reason=reason)
    value = float(value)
    return RuleResult(index, rule, attack, figure, value, rule.max, value <= rule.max)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _risk_result(index: int, rule: Rule, summary: dict, names: list[str],
                 scores: pd.DataFrame | None) -> RuleResult:
    if scores is None:
        raise DataError(f"Rule {index} (record_risk) needs the run's scores.parquet, "
                        "which is missing.")
    best, members = member_risks(summary, scores, names)
    risks = members["risk"].to_numpy()
    k = rule.max_records
    figure = ("highest member record risk" if k == 0 else
              f"member record risk, {_ordinal(k + 1)} highest")
    value = float(risks[k]) if len(risks) > k else 0.0
    above = int((risks > rule.max).sum())
    detail = (f"{above} of {len(risks)} members have a risk above {rule.max:g} under the "
              f"strongest attack ({best}); {k} allowed")
    return RuleResult(index, rule, best, figure, value, rule.max, value <= rule.max,
                      detail=detail)


def evaluate_policy(policy: Policy, summary: dict,
                    scores: pd.DataFrame | None = None) -> list[RuleResult]:
    """Check every rule of a policy against a run.

    Parameters
    ----------
    policy : Policy
    summary : dict
        The run's ``summary.json``; rules read its ``attacks`` (the first exposure).
    scores : pandas.DataFrame, optional
        The run's ``scores.parquet``; needed by ``record_risk`` rules only.

    Returns
    -------
    list of RuleResult
        In policy order; one per attack a rule names (``record_risk``: one per rule).

    Raises
    ------
    ConfigError
        A rule names an attack or an FPR level the run does not report.

    Examples
    --------
    >>> entry = {"auc": 0.62, "auc_ci": [0.58, 0.66], "undefined": {}}
    >>> policy = parse_policy('[[rule]]\\nmetric = "auc"\\nuse = "upper"\\nmax = 0.6\\n')
    >>> [(r.attack, r.value, r.passed) for r in evaluate_policy(policy,
    ...                                                         {"attacks": {"loss": entry}})]
    [('loss', 0.66, False)]
    """
    entries = summary["attacks"]
    if not entries:
        raise DataError("The run has no attacks: there is nothing to gate.")
    confidence = round(100 * (1 - summary.get("settings", {}).get("alpha", 0.05)))
    results = []
    for index, rule in enumerate(policy.rules, 1):
        names = list(entries) if rule.attacks == "*" else list(rule.attacks)
        unknown = [n for n in names if n not in entries]
        if unknown:
            raise ConfigError(f"Rule {index} ({rule.label!r}) names the attack {unknown[0]!r}, "
                              f"which the run did not run (it has: {', '.join(entries)}).")
        if rule.metric == "record_risk":
            results.append(_risk_result(index, rule, summary, names, scores))
            continue
        key = None if rule.fpr is None else _fpr_key(entries, rule.fpr, index)
        results.extend(_attack_result(index, rule, name, entries[name], key, confidence)
                       for name in names)
    return results


def gate(run_dir: str | Path, policy_path: str | Path) -> GateResult:
    """Check a run folder against a policy file.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (``summary.json``; ``scores.parquet`` for ``record_risk`` rules).
    policy_path : str or Path
        A TOML policy.

    Returns
    -------
    GateResult
        Every rule's outcome; ``passed`` when all passed.
    """
    policy = load_policy(policy_path)
    needs_scores = any(r.metric == "record_risk" for r in policy.rules)
    run = load_run(run_dir, scores="optional" if needs_scores else "skip")
    summary, scores = run.summary, run.scores
    results = evaluate_policy(policy, summary, scores)
    return GateResult(str(run_dir), str(policy_path), policy.name, results,
                      all(r.passed for r in results))
