"""Sweep specs: a run spec whose values may be grids, expanded into one run spec per cell.

A sweep spec (YAML) is a run spec (the keys of ``invbench run --config``) plus:

- ``seeds: [0, 1, 2]`` — every cell once per seed (default: the spec's ``seed``);
- ``{grid: [...]}`` in place of any value — one cell per value. Inside a method it expands
  that method (``defenses: [none, {mid: {beta: {grid: [0.003, 0.01, 0.03]}}}]`` gives
  ``none`` and three ``mid`` cells); elsewhere (``train: {epochs: {grid: [5, 10, 20]}}``) it
  is crossed with everything else. A plain list stays a list-valued parameter;
- ``zip:`` — values that go together instead of being crossed: a mapping of dotted paths to
  equal-length lists (``zip: {train.arch: [cnn-s, cnn-m], train.epochs: [20, 10]}``), or a
  list of such mappings (one group each). A path names mapping keys and, for a list, the
  entry's index (``defenses.1.mid.beta``);
- ``threads: 1`` — torch threads of every cell, whatever the backend, so the local pool and
  a Ray cluster give the same numbers.

The expansion is validated whole before any work: each expanded run spec goes through
:func:`invbench.config.make_spec` and an error names the sweep file, the field and the
value. A cell is one (spec, defense, attack, seed); cells that two grid values both produce
(the ``none`` of every ``mid`` value) appear once.

Example::

    sweep = load_sweep("benchmarks/specs/fashion-sweep.yaml")
    for cell in sweep.cells:        # RunSpec objects with one defense and one attack
        print(cell.defenses[0].label, cell.attacks[0].label, cell.seed)
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from invbench.config import RunSpec, make_spec
from invbench.errors import ConfigError

#: keys a sweep spec adds to a run spec
SWEEP_KEYS = ("seeds", "zip", "threads")


@dataclass(frozen=True)
class Sweep:
    """An expanded sweep: the cells (one run spec each) and the per-cell thread count."""

    cells: list[RunSpec]
    threads: int
    source: str

    @property
    def out(self) -> Path:
        """The sweep's output folder (every cell shares it: one store, one cache)."""
        return Path(self.cells[0].out)


def _is_grid(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"grid"}


def _grid_values(value: dict[str, Any], where: str) -> list[Any]:
    values = value["grid"]
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: 'grid' takes a non-empty list of values, got {values!r}")
    return values


def _find_grids(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], list[Any]]]:
    """Every ``{grid: [...]}`` in ``node`` as (path, values), depth first."""
    if _is_grid(node):
        return [(path, _grid_values(node, ".".join(map(str, path)) or "spec"))]
    out: list[tuple[tuple[Any, ...], list[Any]]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _find_grids(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _find_grids(v, (*path, i))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any) -> None:
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _resolve_path(raw: dict[str, Any], dotted: str, where: str) -> tuple[Any, ...]:
    """``defenses.1.mid.beta`` -> ('defenses', 1, 'mid', 'beta'), checked against ``raw``.

    The last key may be missing (zip sets it); every step before it must exist.
    """
    parts = [p for p in dotted.split(".") if p]
    if not parts:
        raise ConfigError(f"{where}: empty path")
    path: list[Any] = []
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"{where}: '{dotted}': '{part}' is not an index of a {len(node)}-entry list"
                )
            path.append(int(part))
            node = node[int(part)]
        elif isinstance(node, dict):
            path.append(part)
            if part not in node:
                if last:
                    break
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(f"{where}: '{dotted}': '{part}' reaches into a plain value")
    return tuple(path)


def _zip_groups(raw: dict[str, Any], zipped: Any, where: str) -> list[list[tuple[tuple[Any, ...],
                                                                              list[Any]]]]:
    """The ``zip:`` block as groups of (path, values) of equal length."""
    groups = zipped if isinstance(zipped, list) else [zipped]
    out = []
    for g, group in enumerate(groups):
        name = f"{where} zip" + (f"[{g}]" if isinstance(zipped, list) else "")
        if not isinstance(group, dict) or not group:
            raise ConfigError(f"{name}: give a mapping of dotted paths to lists of values")
        pairs = []
        for dotted, values in group.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{name}: '{dotted}' takes a non-empty list, got {values!r}")
            pairs.append((_resolve_path(raw, str(dotted), name), values))
        sizes = {len(v) for _, v in pairs}
        if len(sizes) != 1:
            lens = ", ".join(f"{d}: {len(v)}" for d, v in group.items())
            raise ConfigError(f"{name}: lists of different lengths ({lens}); zip pairs them")
        out.append(pairs)
    return out


def expand(raw: dict[str, Any], *, where: str = "sweep") -> Sweep:
    """Expand a sweep mapping (a parsed YAML) into validated cells; see the module docstring."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must hold a mapping of fields at the top level")
    raw = copy.deepcopy(raw)
    seeds = raw.pop("seeds", None)
    zipped = raw.pop("zip", None)
    threads = raw.pop("threads", 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{where}: field 'threads' must be an integer >= 1, got {threads!r}")
    if seeds is not None:
        if (not isinstance(seeds, list) or not seeds
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
            raise ConfigError(f"{where}: field 'seeds' must be a non-empty list of integers "
                              f">= 0, got {seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"{where}: field 'seeds' lists a seed twice: {seeds}")
        if "seed" in raw:
            raise ConfigError(f"{where}: give 'seeds' or 'seed', not both")
    if raw.get("target_url") is not None:
        raise ConfigError(f"{where}: field 'target_url': a sweep trains its targets; attack an "
                          "endpoint with `invbench run --target-url`")
    groups = _zip_groups(raw, zipped, where) if zipped is not None else []
    for pairs in groups:  # zipped values must not themselves be grids
        for path, values in pairs:
            if any(_find_grids(v) for v in values):
                raise ConfigError(f"{where}: zip '{'.'.join(map(str, path))}' holds a grid")
    grids = _find_grids(raw)
    zipped_paths = {p for pairs in groups for p, _ in pairs}
    for path, _ in grids:
        if path in zipped_paths:
            raise ConfigError(f"{where}: '{'.'.join(map(str, path))}' is both a grid and zipped")

    axes: list[list[list[tuple[tuple[Any, ...], Any]]]] = []
    for path, values in grids:
        axes.append([[(path, v)] for v in values])
    for pairs in groups:
        n = len(pairs[0][1])
        axes.append([[(p, vals[i]) for p, vals in pairs] for i in range(n)])

    cells: list[RunSpec] = []
    seen: set[str] = set()
    for combo in itertools.product(*axes) if axes else [()]:
        spec_raw = copy.deepcopy(raw)
        for assignment in combo:
            for path, value in assignment:
                _set(spec_raw, path, value)
        try:
            spec = make_spec(**spec_raw)
        except ConfigError as exc:
            what = ", ".join(f"{'.'.join(map(str, p))}={v!r}" for a in combo for p, v in a)
            raise ConfigError(f"{where}" + (f" (with {what})" if what else "") + f": {exc}"
                              ) from None
        for seed in seeds if seeds is not None else [spec.seed]:
            for d in spec.defenses:
                for a in spec.attacks:
                    cell = spec.model_copy(update={"defenses": [d], "attacks": [a],
                                                   "seed": seed})
                    ident = cell.model_dump_json()
                    if ident not in seen:
                        seen.add(ident)
                        cells.append(cell)
    outs = {str(c.out) for c in cells}
    if len(outs) > 1:
        raise ConfigError(f"{where}: field 'out' differs between cells ({sorted(outs)}); a "
                          "sweep writes one store")
    return Sweep(cells=cells, threads=threads, source=where)


def load_sweep(path: str | Path, **overrides: Any) -> Sweep:
    """Load and expand a sweep YAML; ``overrides`` (not None) replace top-level fields."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"sweep file '{p}' does not exist")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"sweep file '{p}' is not valid YAML{at}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep file '{p}' must hold a mapping of fields at the top level")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return expand(raw, where=f"sweep file '{p}'")
