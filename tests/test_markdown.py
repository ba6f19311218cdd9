"""The Markdown report's escaping: one escaper (md_escape) as the template's finalize."""

from __future__ import annotations

import warnings

import jinja2
import numpy as np
import pandas as pd
import pytest

from miaudit.errors import MiauditWarning
from miaudit.metrics import evaluate
from miaudit.report import content
from miaudit.report.markdown import (
    TEMPLATE,
    MarkdownText,
    environment,
    md_code,
    md_escape,
    md_finalize,
    render_markdown_from,
)

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=1>'


def _run(ids: list[str]) -> tuple[dict, pd.DataFrame]:
    """A hand-made run of two attacks on 200 records with the given member IDs."""
    rng = np.random.default_rng(0)
    n = 200
    member = np.arange(n) < n // 2
    scores = {"loss": rng.normal(size=n) + member, "zlib": rng.normal(size=n)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MiauditWarning)
        attacks = {k: evaluate(s, member).to_dict() for k, s in scores.items()}
    summary = {"miaudit_version": "0", "exposure": "logits", "attacks": attacks,
               "data": {"name": "d", "n_records": n, "fingerprint": "ab" * 32},
               "target": {"model": "m", "n_members": n // 2, "n_non_members": n // 2},
               "settings": {"seed": 0, "alpha": 0.05, "fprs": [0.01]}, "warnings": []}
    record_ids = [ids[i % len(ids)] + f" {i}" if m else f"r{i}" for i, m in enumerate(member)]
    table = pd.DataFrame({"target": 0, "record_id": record_ids, "is_member": member,
                          "fingerprint": [f"{i:064x}" for i in range(n)], **scores})
    return summary, table


def test_md_escape_makes_values_inert():
    assert md_escape(SCRIPT) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert md_escape("a|b *c* [d](e) `f` #g\n\nh") == r"a\|b \*c\* \[d\](e) \`f\` \#g h"
    assert md_escape(None) == "None" and md_escape(0.5) == "0.5"


def test_the_model_card_uses_the_same_escaper():
    from miaudit.governance.model_card import escape_markdown

    assert escape_markdown is md_escape


def test_markdown_environment_escapes_every_value_and_is_strict():
    env = environment()
    assert env is environment()  # built once
    assert env.autoescape is False and env.finalize is md_finalize
    assert env.undefined is jinja2.StrictUndefined
    for value in (SCRIPT, IMG, "a|b", "**x**", 3):
        assert env.from_string("{{ x }}").render(x=value) == md_escape(value)
    assert env.from_string("{{ x }}").render(x=MarkdownText("**x**")) == "**x**"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        env.get_template(TEMPLATE).render({})
    # one formatter for the page and the Markdown
    assert env.filters["figure"] is content.format_figure
    assert env.filters["interval"] is content.format_interval
    assert env.filters["fpr_text"] is content.fpr_text


def test_code_spans_only_around_values_that_cannot_end_them():
    assert md_code("abc") == "`abc`" and isinstance(md_code("abc"), MarkdownText)
    assert md_code(f"x`{SCRIPT}") == md_escape(f"x`{SCRIPT}")
    assert "<script" not in md_code(f"x\n\n{SCRIPT}")


def test_hostile_record_ids_are_escaped_in_the_markdown_report():
    summary, scores = _run([SCRIPT, IMG])
    summary["data"]["fingerprint"] = f"ab\n\n{SCRIPT}"  # a monospace value
    summary["warnings"] = [IMG]
    md = render_markdown_from(summary, scores, source=SCRIPT)
    assert "<script" not in md.lower() and "<img" not in md.lower()
    ids = list(content.records_at_risk(scores, content.verdict(summary).attack)[0]["record_id"])
    assert any(SCRIPT in r for r in ids) and any(IMG in r for r in ids)
    for rid in ids:
        assert f"| {md_escape(rid)} |" in md  # one cell of the records table
    assert f"- {md_escape(IMG)}\n" in md
    assert "- **Data fingerprint:** `" not in md  # escaped text instead of a code span
    summary["data"]["fingerprint"] = "ab" * 32
    md = render_markdown_from(summary, scores)
    assert f"- **Data fingerprint:** `{'ab' * 32}`" in md
