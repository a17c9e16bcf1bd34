"""Analyses of a trained model (``invbench analyze``): what its parameters say about a task.

- :mod:`invbench.analysis.fisher`: per-layer diagonal Fisher information of the
  classification task (private images) and of the model-inversion task (an attack's
  reconstructions), the evidence of TL-DMI (Ho et al., CVPR 2024).
"""

from invbench.analysis.fisher import FisherLayer, FisherResult, diagonal_fisher, fisher_layers

__all__ = ["FisherLayer", "FisherResult", "diagonal_fisher", "fisher_layers"]
