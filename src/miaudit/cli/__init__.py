"""The ``miaudit`` command line: the app (:mod:`miaudit.cli.app`) and its command groups,
one module each; :mod:`miaudit.cli.common` holds what they share. Library code never
imports this package."""

from miaudit.cli.app import app

__all__ = ["app"]
