"""``python -m miaudit``: the command line."""

from miaudit.cli import app

app(prog_name="miaudit")
