"""The one base class of mtsql's own errors.

Every error mtsql raises for a problem of its input (a dataset file, a template, a config, a model, a records
file, a backend) derives from :class:`MtsqlError`, so a caller, the ``mtsql`` command first, catches one type.
Each keeps the built-in class it was before as a second base (``ValueError`` for bad input, ``RuntimeError``
for a failed service, ``FileNotFoundError`` for missing data), so ``except ValueError`` still catches it.
"""

from __future__ import annotations

__all__ = ["ConfigError", "InputError", "MtsqlError"]


class MtsqlError(Exception):
    """Base of the errors mtsql raises for a problem of its input; the message says what and where."""


class ConfigError(MtsqlError, ValueError):
    """A setting that cannot be used: out of range, of the wrong type, unknown, or inconsistent with another."""


class InputError(MtsqlError, ValueError):
    """Inputs that do not fit together: a prediction file out of step with its gold, a database a file lacks."""
