"""The package's shape: imports go one way (no cycles), and the library never imports the
command line or its framework."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "miaudit"
CYCLES_TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "import_cycles.py"


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_library_code_never_imports_the_command_line():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.relative_to(SRC).parts[0] in ("cli", "__main__.py"):
            continue
        bad = {m for m in _imports(path)
               if m.split(".")[0] in ("typer", "click") or m.startswith("miaudit.cli")}
        if bad:
            offenders.append(f"{path.relative_to(SRC)}: {sorted(bad)}")
    assert not offenders, offenders


def test_importing_the_library_loads_no_cli_framework():
    code = ("import sys, miaudit.audits, miaudit.report.html, miaudit.report.markdown, "
            "miaudit.governance.policy, miaudit.results.folder; "
            "print(sorted(m for m in ('typer', 'click', 'miaudit.cli') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_jinja2_loads_only_when_a_report_is_rendered():
    """The command line starts fast: importing it, the report modules or the model card
    loads no template engine."""
    code = ("import sys, miaudit.cli, miaudit.report.html, miaudit.report.markdown, "
            "miaudit.report.files, miaudit.governance.model_card; "
            "print(sorted(m for m in ('jinja2', 'markupsafe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.skipif(not CYCLES_TOOL.exists(), reason="../shared/tools/import_cycles.py absent")
def test_no_import_cycles():
    res = subprocess.run([sys.executable, str(CYCLES_TOOL), str(SRC)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout
