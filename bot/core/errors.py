"""Errors an operator sees. Each says what went wrong and what to do next.

    ReachableError          the root of this package's errors
     └── ConfigError        a setting is missing or wrong

The other packages keep their own roots, so ``flows/`` and ``storage/`` never import ``bot/``:
``flows.model.FlowError``, ``responses.ResponsesError`` (every problem, with file and line) and
``storage.StorageError``. The command line turns any of them into one message and exit code 2.
"""

from __future__ import annotations


class ReachableError(Exception):
    pass


class ConfigError(ReachableError):
    pass
