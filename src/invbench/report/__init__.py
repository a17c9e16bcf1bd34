"""Reports: terminal tables, image grids and privacy-utility plots.

Each function is importable from here; matplotlib is only imported when a plot is drawn.
"""

from invbench.report.grids import save_comparison_grid
from invbench.report.plots import tradeoff_plot
from invbench.report.tables import results_table, runs_table

__all__ = ["results_table", "runs_table", "save_comparison_grid", "tradeoff_plot"]
