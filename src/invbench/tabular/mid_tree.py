"""MID for decision trees: ID3 whose split score pays for the information the prediction leaks.

Paper: T. Wang, Y. Zhang, R. Jia, "Improving Robustness to Model Inversion Attacks via
Mutual Information Regularization", AAAI 2021 (https://arxiv.org/abs/2009.05241). MID trains
a model to fit ``Y`` while keeping the mutual information ``I(X; Ŷ)`` between the input and
the model's prediction small, so that the prediction says little about the (sensitive)
input attributes an inversion attacker wants to recover.

For a deterministic tree, ``H(Ŷ | X) = 0`` and ``I(X; Ŷ) = H(Ŷ)``: the entropy of the
distribution of the tree's predicted labels over the training data. Growing the tree
greedily, the split score of a candidate attribute is::

    score = IG_Y − λ · [H(Ŷ after the split) − H(Ŷ before)]

where ``IG_Y`` is ID3's information gain on ``Y`` weighted by the node's share of the training
records (so both terms are changes of mutual informations of the whole tree, in bits; see
:class:`~invbench.tabular.id3.InformationGain`), and ``Ŷ`` is the prediction of the tree grown
so far on the training records (nodes are grown depth-first; a leaf predicts its majority
class). A split's effect on ``H(Ŷ)`` is exact: only the node's records change their
prediction, from the node's majority class to their child's. The best-scoring admissible
attribute is taken only if its score is positive; ``λ = 0`` gives plain ID3 exactly.

Threat model: a defense for the target model; attacked by ``map-tree`` (black-box or
white-box).

Example::

    >>> from invbench.tabular.data import synthetic_warfarin
    >>> data = synthetic_warfarin(n=600, seed=0)
    >>> tree = MIDDecisionTreeClassifier(lam=0.5, max_depth=4).fit(data.X, data.y_class)
    >>> 0.0 <= prediction_entropy(tree, data.X) <= 2.0
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from invbench.tabular._validation import check_param
from invbench.tabular.id3 import (
    GainPolicy,
    InformationGain,
    NodeStats,
    SplitPolicy,
    _ID3Base,
    entropy_bits,
)

__all__ = ["MIDDecisionTreeClassifier", "MIDSplitScore", "prediction_entropy"]


class MIDSplitScore(InformationGain):
    """``IG_Y − λ · ΔH(Ŷ)`` (bits); keeps the tree's training prediction counts as state.

    Args:
        lam: λ >= 0.
    """

    def __init__(self, lam: float) -> None:
        self.lam = float(lam)

    def begin(self, *, n_total: int, class_counts: np.ndarray) -> None:
        """Start from the root predicting its majority class for every training record."""
        super().begin(n_total=n_total, class_counts=class_counts)
        self.pred_counts = np.zeros(class_counts.shape[0], dtype=np.float64)
        self.pred_counts[int(np.argmax(class_counts))] = float(n_total)
        self._after: np.ndarray | None = None

    def scores(self, node: NodeStats) -> np.ndarray:
        """Per attribute: weighted information gain minus λ times the rise of ``H(Ŷ)``."""
        gain = super().scores(node)
        b, k = node.bin_counts.shape
        n_b = node.bin_counts.sum(axis=1)
        moved = np.zeros((b, k), dtype=np.float64)
        moved[np.arange(b), np.argmax(node.bin_counts, axis=1)] = n_b
        per_attr = np.add.reduceat(moved, node.offsets[:-1], axis=0)  # (d, K)
        base = self.pred_counts.copy()
        base[int(np.argmax(node.class_counts))] -= node.n_records
        after = base[None, :] + per_attr
        self._after = after
        delta_h = entropy_bits(after) - float(entropy_bits(self.pred_counts))
        return gain - self.lam * delta_h

    def commit(self, node: NodeStats, feature: int) -> None:
        """Update the prediction counts to the chosen split's."""
        if self._after is None:  # pragma: no cover - the policy always scores first
            raise RuntimeError("MIDSplitScore.commit called before scores")
        self.pred_counts = self._after[feature].copy()
        self._after = None


class MIDDecisionTreeClassifier(_ID3Base):
    """ID3 with the MID split criterion ``IG_Y − λ·ΔI(X; Ŷ)`` (Wang, Zhang & Jia, AAAI 2021).

    See the module docstring for the criterion. Attributes: 0/1 columns (one-hot groups,
    flags) and numeric columns cut into ``n_bins`` quantile bins; multiway splits.

    Args:
        lam: λ >= 0, the weight of the leakage penalty (0 = plain ID3).
        max_depth: int >= 1.
        n_bins: int >= 2, quantile bins per numeric column.
        min_samples_leaf: int >= 1, the fewest records a non-empty child may get.

    Attributes:
        classes_, n_features_in_, binner_, tree_, leaf_counts_ (``(n_nodes, K)`` training
        class counts per node id, read by the white-box ``map-tree`` attack).

    Shapes: ``X`` is ``(n, d)`` finite floats, ``y`` ``(n,)`` class labels.

    Example::

        >>> import numpy as np
        >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
        >>> MIDDecisionTreeClassifier(lam=0.0).fit(X, [0, 0, 1, 1]).predict(X).tolist()
        [0, 0, 1, 1]
        >>> MIDDecisionTreeClassifier(lam=5.0).fit(X, [0, 0, 1, 1]).predict(X).tolist()
        [0, 0, 0, 0]
    """

    def __init__(
        self,
        *,
        lam: float = 0.0,
        max_depth: int = 5,
        n_bins: int = 4,
        min_samples_leaf: int = 1,
    ) -> None:
        self.lam = lam
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.min_samples_leaf = min_samples_leaf

    def _validate_params(self) -> None:
        check_param(self, "lam", self.lam, kind="float", low=0)
        super()._validate_params()
        check_param(self, "min_samples_leaf", self.min_samples_leaf, kind="int", low=1)

    def _make_policy(self) -> SplitPolicy:
        score = MIDSplitScore(float(self.lam))
        return GainPolicy(score, min_samples_leaf=int(self.min_samples_leaf))


def prediction_entropy(model: Any, X: Any) -> float:
    """``H(Ŷ)`` in bits: entropy of the distribution of ``model.predict(X)`` labels.

    For a deterministic classifier this is the plug-in estimate of ``I(X; Ŷ)`` on ``X``.

    Example::

        >>> import numpy as np
        >>> class Const:
        ...     def predict(self, X): return np.zeros(len(X))
        >>> prediction_entropy(Const(), np.zeros((5, 2)))
        0.0
    """
    pred = np.asarray(model.predict(X))
    _, counts = np.unique(pred, return_counts=True)
    return float(entropy_bits(counts.astype(np.float64)))
