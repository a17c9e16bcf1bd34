"""Reports: terminal tables, image grids, privacy-utility plots and the HTML report.

Each function is importable from here; matplotlib is only imported when a plot is drawn.
"""

from invbench.report.grids import save_comparison_grid
from invbench.report.html import render_report, write_report
from invbench.report.plots import curve_plot, tradeoff_figures, tradeoff_plot
from invbench.report.tables import results_table, runs_table

__all__ = [
    "curve_plot",
    "render_report",
    "results_table",
    "runs_table",
    "save_comparison_grid",
    "tradeoff_figures",
    "tradeoff_plot",
    "write_report",
]
