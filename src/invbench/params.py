"""Hyperparameters: declared once, validated once.

Every attack, defense and metric declares its hyperparameters as a nested pydantic model
called ``Params`` (types, defaults, ranges, one-line descriptions). That single declaration
feeds the constructor (keyword-only), the CLI (``mid:beta=0.01``), YAML specs, ``repr``,
the stored spec and ``invbench list``. Validation errors use one template::

    The 'steps' parameter of attack 'mi-face' must be >= 1. Got -3 instead.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from invbench.errors import ConfigError


class Params(BaseModel):
    """Base for hyperparameter declarations (frozen, unknown keys refused, strict types).

    Strict: ``iterations=true`` or ``beta="0.1"`` is an error, not a silent 1 or 0.1 (an int
    is still accepted where a float is declared).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)


_CONSTRAINT_WORDS = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
}


def _describe(err: dict[str, Any], params_cls: type[Params]) -> str:
    etype = err.get("type", "")
    ctx = err.get("ctx", {}) or {}
    if etype in _CONSTRAINT_WORDS:
        return _CONSTRAINT_WORDS[etype].format(**ctx)
    field = str(err["loc"][0]) if err.get("loc") else ""
    info = params_cls.model_fields.get(field)
    if info is not None and info.annotation is not None:
        if get_origin(info.annotation) is Literal:
            return f"must be one of {_type_name(info.annotation)}"
        return f"must be of type {_type_name(info.annotation)} ({err.get('msg', '').lower()})"
    return str(err.get("msg", "is invalid")).lower()


def validate_params(
    params_cls: type[Params], values: dict[str, Any], *, kind: str, name: str
) -> Params:
    """Build ``params_cls`` from ``values`` or raise a one-line :class:`ConfigError`."""
    allowed = list(params_cls.model_fields)
    for key in values:
        if key not in params_cls.model_fields:
            hint = ", ".join(allowed) if allowed else "none"
            raise ConfigError(
                f"{kind} '{name}' has no parameter '{key}'; its parameters are: {hint}"
            )
    try:
        return params_cls(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "?"
        got = err.get("input", values.get(field))
        raise ConfigError(
            f"The '{field}' parameter of {kind} '{name}' {_describe(err, params_cls)}. "
            f"Got {got!r} instead."
        ) from None


class Configurable:
    """Base for anything with declared hyperparameters (attacks, defenses, metrics)."""

    kind: ClassVar[str] = "method"
    name: ClassVar[str] = "?"
    Params: ClassVar[type[Params]] = Params

    def __init__(self, **params: Any) -> None:
        self.params = validate_params(type(self).Params, params, kind=self.kind, name=self.name)

    def get_params(self) -> dict[str, Any]:
        """The validated hyperparameters as a plain dict."""
        return self.params.model_dump()

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({inner})"

    @classmethod
    def describe_params(cls) -> list[tuple[str, str, Any, str]]:
        """``(name, type, default, description)`` for each hyperparameter."""
        out = []
        for fname, info in cls.Params.model_fields.items():
            out.append((fname, _type_name(info.annotation), info.default, info.description or ""))
        return out


def _type_name(annotation: Any) -> str:
    """'int', 'float', or the choices of a Literal: "'ce' | 'logit'"."""
    if get_origin(annotation) is Literal:
        return " | ".join(repr(a) for a in get_args(annotation))
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
