"""User-facing errors.

Every mistake a user can make (an unknown name, a bad parameter, a missing file) raises an
:class:`InvbenchError`. The CLI turns it into one line on stderr and exit code 2; the
Python API lets it propagate. Internal bugs are *not* InvbenchErrors and keep their
traceback.
"""

from __future__ import annotations


class InvbenchError(ValueError):
    """A problem with what the user asked for; the message is one line that says what to do."""


class ConfigError(InvbenchError):
    """A spec, flag or hyperparameter is invalid."""


class DataError(InvbenchError):
    """A dataset, file or tensor is missing, malformed or of the wrong shape."""


class AccessError(InvbenchError):
    """An attack asked for more access to the target than its threat model grants."""


class QueryBudgetExceeded(AccessError):
    """A black-box or label-only access object ran out of queries."""


class MissingExtraError(InvbenchError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'invbench[{extra}]'"
        )


def optional_import(module: str, *, extra: str, purpose: str):  # noqa: ANN201
    """Import an optional dependency, or raise a one-line :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module.split(".")[0], extra, purpose) from exc
