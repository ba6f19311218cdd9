"""Test doubles for trying miaudit against real interfaces: a model served over HTTP with
injected faults (:mod:`miaudit.testing.server`, the ``miaudit http serve`` command)."""
