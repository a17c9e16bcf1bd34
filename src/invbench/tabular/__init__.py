"""Classical model inversion on tabular models (linear regression, decision trees)."""

from __future__ import annotations

from invbench.tabular.data import (
    TabularData,
    load_csv,
    load_iwpc,
    load_tabular,
    synthetic_warfarin,
)

__all__ = ["TabularData", "load_csv", "load_iwpc", "load_tabular", "synthetic_warfarin"]
