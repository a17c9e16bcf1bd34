"""The registry: built-in import errors surface as themselves; plugins via entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib import metadata

import pytest

from invbench import registry
from invbench.config import build_method, parse_method
from invbench.errors import ConfigError
from invbench.registry import ATTACKS, DEFENSES, ENTRY_POINT_GROUP

PLUGIN_NAMES = ("example-plugin", "example-plugin-callable")


def _ep(value: str, name: str = "example") -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[metadata.EntryPoint]]:
    """A registry that loads again on its next lookup, with the plugins this test installs.

    Yields the list of fake entry points the lookup returns (empty: no plugins); afterwards
    removes what the test plugins registered and lets the next lookup load the real state.
    """
    ATTACKS.names()  # built-ins imported before the test starts breaking things
    installed: list[metadata.EntryPoint] = []

    def fake_entry_points(**kwargs: object) -> list[metadata.EntryPoint]:
        assert kwargs == {"group": ENTRY_POINT_GROUP}
        return list(installed)

    monkeypatch.setattr(metadata, "entry_points", fake_entry_points)
    registry._reset()
    yield installed
    for name in PLUGIN_NAMES:
        ATTACKS._items.pop(name, None)
    sys.modules.pop("_plugin_example", None)
    registry._reset()


def test_builtins_load_once_and_list_every_method(fresh_registry) -> None:
    names = ATTACKS.names()
    assert {"gmi", "mi-face"} <= set(names)
    assert ATTACKS.names() == names and "none" in DEFENSES and "mid" in DEFENSES


def test_plugin_module_registers_an_attack(fresh_registry) -> None:
    fresh_registry.append(_ep("_plugin_example"))
    assert "example-plugin" in ATTACKS.names()
    assert {"gmi", "mi-face"} <= set(ATTACKS.names())  # built-ins still there
    attack = build_method("attack", parse_method("example-plugin:scale=0.5"))
    assert type(attack).__name__ == "ExamplePluginAttack" and attack.params.scale == 0.5
    with pytest.raises(ConfigError, match="'scale' parameter of attack 'example-plugin'"):
        build_method("attack", parse_method("example-plugin:scale=2"))


def test_plugin_callable_is_called(fresh_registry) -> None:
    fresh_registry.append(_ep("_plugin_example:register_more"))
    names = ATTACKS.names()
    # importing the module registered one attack, calling the function the other
    assert set(PLUGIN_NAMES) <= set(names)
    assert build_method("attack", parse_method("example-plugin-callable")).name == (
        "example-plugin-callable"
    )


def test_plugin_class_is_imported_not_called(fresh_registry) -> None:
    fresh_registry.append(_ep("_plugin_example:ExamplePluginAttack"))
    assert "example-plugin" in ATTACKS.names()
    assert "example-plugin-callable" not in ATTACKS.names()


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("_invbench_no_such_plugin", "ModuleNotFoundError: No module named "
                                     "'_invbench_no_such_plugin'"),
        ("_plugin_example:missing", "AttributeError"),
        ("_plugin_example:VERSION", "TypeError: str object is neither a module nor callable"),
    ],
)
def test_broken_plugin_is_a_one_line_config_error(fresh_registry, value, error) -> None:
    fresh_registry.append(_ep(value, name="broken"))
    for _ in range(2):  # every lookup, not only the first
        with pytest.raises(ConfigError) as info:
            ATTACKS.get("mi-face")
        msg = str(info.value)
        assert msg.startswith(f"plugin 'broken' ({value}) of entry-point group "
                              f"'{ENTRY_POINT_GROUP}' failed to load: ")
        assert error in msg and "\n" not in msg


def test_plugin_clashing_with_a_builtin_is_refused(fresh_registry) -> None:
    fresh_registry.append(_ep("_plugin_example:register_clash", name="clash"))
    clash = r"^plugin 'clash' .* attack 'mi-face' is registered twice"
    with pytest.raises(ConfigError, match=clash):
        ATTACKS.names()
    assert ATTACKS._items["mi-face"].__name__ == "MIFace"  # the built-in is kept


def test_broken_builtin_import_surfaces_every_time(fresh_registry, monkeypatch) -> None:
    # a None entry makes `import invbench.attacks` fail as a broken module would
    monkeypatch.setitem(sys.modules, "invbench.attacks", None)
    errors = []
    for lookup in (lambda: ATTACKS.get("gmi"), ATTACKS.names, lambda: "gmi" in ATTACKS):
        with pytest.raises(ModuleNotFoundError, match="invbench.attacks") as info:
            lookup()
        errors.append(info.value)
    assert errors[0] is errors[1] is errors[2]  # the original exception, not "unknown attack"


def test_broken_builtin_module_error_is_not_unknown_attack(fresh_registry, monkeypatch) -> None:
    def import_module(name: str):
        if name == "invbench.defenses":
            raise SyntaxError("invalid syntax (mid.py, line 3)")
        return __import__(name)

    monkeypatch.setattr(registry, "import_module", import_module)
    for _ in range(2):
        with pytest.raises(SyntaxError, match="mid.py"):
            DEFENSES.get("mid")
    monkeypatch.undo()  # the module imports again: the next lookup recovers
    registry._reset()
    assert "mid" in DEFENSES
