"""``python -m miaudit``: the command line."""

from miaudit.cli import app

if __name__ == "__main__":
    app(prog_name="miaudit")
