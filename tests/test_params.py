"""Hyperparameters are declared once and validated with one message template."""

from __future__ import annotations

import pytest
from pydantic import Field

from invbench.errors import ConfigError
from invbench.params import Configurable, Params


class _Thing(Configurable):
    kind = "attack"
    name = "thing"

    class Params(Params):
        steps: int = Field(10, ge=1, description="iterations")
        lr: float = Field(0.1, gt=0)
        mode: str = "a"


def test_defaults_and_overrides_and_repr():
    t = _Thing(steps=5)
    assert t.get_params() == {"steps": 5, "lr": 0.1, "mode": "a"}
    assert repr(t) == "_Thing(steps=5, lr=0.1, mode='a')"
    assert _Thing.describe_params()[0] == ("steps", "int", 10, "iterations")


def test_range_error_uses_the_template():
    with pytest.raises(ConfigError) as exc:
        _Thing(steps=-3)
    assert str(exc.value) == "The 'steps' parameter of attack 'thing' must be >= 1. Got -3 instead."


def test_type_error_names_the_type():
    with pytest.raises(
        ConfigError, match=r"The 'lr' parameter of attack 'thing' must be of type float"
    ):
        _Thing(lr="fast")


def test_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(
        ConfigError, match="has no parameter 'stepz'; its parameters are: steps, lr, mode"
    ):
        _Thing(stepz=3)


def test_types_are_strict_no_silent_coercion():
    # the CLI and YAML hand over typed values (yaml scalars); a string or a bool where a number
    # is declared is a mistake, not a 7 or a 1
    with pytest.raises(ConfigError, match="'steps' parameter of attack 'thing' must be of type"):
        _Thing(steps="7")
    with pytest.raises(ConfigError, match="must be of type int"):
        _Thing(steps=True)
    assert _Thing(lr=1).get_params()["lr"] == 1.0  # an int where a float is declared is fine
