"""An ID3 decision-tree core on numpy, shared by the plain, MID and differentially private trees.

ID3 (J. R. Quinlan, "Induction of decision trees", Machine Learning 1(1), 1986) grows a tree
top-down: at each node it splits the records on the *attribute* whose values best separate
the classes (information gain), with one child per value (a multiway split), and never
splits on an attribute already used on the path. Here:

* **Features.** Every column of ``X`` is an attribute. A 0/1 column (one column of a one-hot
  group, or a binary flag) has two values; any other numeric column is cut into at most
  ``n_bins`` quantile bins whose edges are learned in ``fit`` (a column with at most
  ``n_bins`` distinct values gets one bin per value). :class:`QuantileBinner` does this.
* **Nodes store class counts** (``leaf_counts_[node]``, shape ``(n_classes,)``), which the
  white-box "MAP with counts" attack reads; :meth:`ID3Classifier.apply` maps records to
  leaf ids. A child that receives no training record predicts like its parent.
* **Pluggable split choice.** :func:`build_tree` owns the recursion and the arrays; a
  :class:`SplitPolicy` decides, at each node, whether to split and on which attribute, and
  what counts a leaf stores. :class:`GainPolicy` is greedy ID3 driven by a
  :class:`SplitScore` (information gain here; MID subtracts a leakage penalty in
  ``mid_tree.py``); the DP tree (``dp_tree.py``) has its own noisy policy.
* **Vectorised counting.** At a node the counts of every (attribute value, class) pair for
  all attributes come from one ``np.bincount``; scores for all attributes are computed at
  once with ``np.add.reduceat``. 5,000 rows x 30 attributes to depth 8 fit in well under a
  second.

Example::

    >>> import numpy as np
    >>> X = np.array([[0, 1.0], [0, 2.0], [1, 3.0], [1, 4.0]])
    >>> tree = ID3Classifier(max_depth=2).fit(X, [0, 0, 1, 1])
    >>> tree.predict(X).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

from abc import ABC, ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from invbench.errors import DataError
from invbench.tabular._validation import check_param

__all__ = [
    "GainPolicy",
    "ID3Classifier",
    "InformationGain",
    "NodeStats",
    "QuantileBinner",
    "SplitPolicy",
    "SplitScore",
    "TreeArrays",
    "build_tree",
    "entropy_bits",
]

#: Splits whose score is not above this are not taken (absorbs floating-point noise in
#: gains of useless splits, which are exactly 0 in exact arithmetic).
SCORE_TOL = 1e-12


def entropy_bits(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy in bits of each row of ``counts`` (``(..., K)``); empty rows give 0.

    Example::

        >>> float(entropy_bits(np.array([2.0, 2.0])))
        1.0
    """
    c = np.asarray(counts, dtype=np.float64)
    tot = c.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tot > 0, c / np.where(tot > 0, tot, 1.0), 0.0)
        terms = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return 0.0 - terms.sum(axis=-1)  # 0.0 - x turns -0.0 into 0.0


# --------------------------------------------------------------------------------- binning


class QuantileBinner:
    """Turns each column of ``X`` into small integer codes (the values an ID3 split sees).

    A column whose values are all 0 or 1 is binary (edge 0.5). Another column with at most
    ``n_bins`` distinct values gets one bin per value (edges at the midpoints); otherwise
    the edges are the distinct interior quantiles ``q = 1/n_bins … (n_bins-1)/n_bins`` of the
    training column. Code = number of edges ``<=`` the value (``np.searchsorted(...,
    side="right")``), so unseen values fall into the nearest outer bin.

    Attributes (after :meth:`fit`):
        edges_: list of ``d`` sorted float arrays.
        n_values_: ``(d,)`` int64, the number of codes of each column (``len(edges) + 1``).
        offsets_: ``(d + 1,)`` int64, cumulative ``n_values_`` (column ``j``'s codes occupy
            ``offsets_[j] … offsets_[j+1]-1`` in a flat enumeration of all (column, code)).

    Example::

        >>> b = QuantileBinner(n_bins=2).fit(np.array([[0.0, 1.0], [1.0, 5.0], [0.0, 9.0]]))
        >>> b.transform(np.array([[1.0, 0.0], [0.0, 10.0]])).tolist()
        [[1, 0], [0, 1]]
    """

    def __init__(self, *, n_bins: int = 8) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray) -> QuantileBinner:
        """Learn the edges of each column of ``X`` (``(n, d)`` finite floats)."""
        X = np.asarray(X, dtype=np.float64)
        edges: list[np.ndarray] = []
        for j in range(X.shape[1]):
            col = X[:, j]
            uniq = np.unique(col)
            if np.all((uniq == 0.0) | (uniq == 1.0)):
                e = np.array([0.5])
            elif uniq.size <= self.n_bins:
                e = 0.5 * (uniq[:-1] + uniq[1:])
            else:
                qs = np.quantile(col, np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1])
                e = np.unique(qs)
                e = e[(e > uniq[0])]  # an edge at the minimum would leave bin 0 empty
            edges.append(np.asarray(e, dtype=np.float64))
        self.edges_ = edges
        self.n_values_ = np.array([e.size + 1 for e in edges], dtype=np.int64)
        self.offsets_ = np.concatenate([[0], np.cumsum(self.n_values_)]).astype(np.int64)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(n, d)`` int64 codes, column ``j`` in ``[0, n_values_[j])``."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty(X.shape, dtype=np.int64)
        for j, e in enumerate(self.edges_):
            out[:, j] = np.searchsorted(e, X[:, j], side="right")
        return out


# ------------------------------------------------------------------------------ the builder


@dataclass
class NodeStats:
    """What a :class:`SplitPolicy` sees of the node being grown (exact training counts).

    Attributes:
        node_id: the node's id in the tree arrays.
        depth: 0 at the root.
        n_records: number of training records at the node.
        class_counts: ``(K,)`` float, training records per class.
        bin_counts: ``(B, K)`` float, records per (attribute value, class), all attributes
            stacked (attribute ``j`` owns rows ``offsets[j] … offsets[j+1]-1``).
        offsets: ``(d + 1,)`` int64 row offsets of each attribute in ``bin_counts``.
        available: ``(d,)`` bool, attributes not yet used on the path from the root.
        n_total: number of training records at the root.
    """

    node_id: int
    depth: int
    n_records: int
    class_counts: np.ndarray
    bin_counts: np.ndarray
    offsets: np.ndarray
    available: np.ndarray
    n_total: int


class SplitPolicy(ABC):
    """Decides how :func:`build_tree` grows a tree (subclass and override :meth:`choose`).

    The builder calls :meth:`begin` once, then for every node in depth-first pre-order
    either :meth:`choose` (when the depth limit allows a split and an attribute is
    available) and, if that returns ``None`` or is not called, :meth:`leaf_counts`.
    """

    def begin(self, *, n_total: int, class_counts: np.ndarray, rng: np.random.Generator) -> None:
        """Called once before the root is grown, with the root's exact class counts."""
        self.rng = rng

    @abstractmethod
    def choose(self, node: NodeStats) -> int | None:
        """The attribute to split ``node`` on, or ``None`` to make it a leaf."""

    def leaf_counts(self, node: NodeStats) -> np.ndarray:
        """The ``(K,)`` class counts a leaf stores (exact by default; DP adds noise)."""
        return node.class_counts.astype(np.float64, copy=True)


@dataclass
class TreeArrays:
    """A fitted multiway tree as flat arrays (node 0 is the root).

    Attributes:
        feature: ``(n_nodes,)`` int64, the attribute a node splits on, ``-1`` for a leaf.
        first_child: ``(n_nodes,)`` int64; the child for code ``v`` of an internal node is
            ``first_child[node] + v`` (children of one node are consecutive ids).
        counts: ``(n_nodes, K)`` float; a leaf's stored class counts; an internal node's is
            the sum over its leaves.
        value: ``(n_nodes, K)`` float, the class distribution the node predicts (its
            normalised counts, or its parent's when it has none).
        depth: ``(n_nodes,)`` int64.
    """

    feature: np.ndarray
    first_child: np.ndarray
    counts: np.ndarray
    value: np.ndarray
    depth: np.ndarray

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.feature.shape[0])

    @property
    def is_leaf(self) -> np.ndarray:
        """``(n_nodes,)`` bool."""
        return self.feature < 0

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """Leaf id of each row of ``codes`` (``(n, d)`` int64 from :class:`QuantileBinner`)."""
        node = np.zeros(codes.shape[0], dtype=np.int64)
        active = np.flatnonzero(self.feature[node] >= 0)
        while active.size:
            f = self.feature[node[active]]
            node[active] = self.first_child[node[active]] + codes[active, f]
            active = active[self.feature[node[active]] >= 0]
        return node


def build_tree(
    codes: np.ndarray,
    y: np.ndarray,
    *,
    n_values: np.ndarray,
    n_classes: int,
    max_depth: int,
    policy: SplitPolicy,
    rng: np.random.Generator | None = None,
) -> TreeArrays:
    """Grow a multiway ID3-style tree depth-first under ``policy``.

    Args:
        codes: ``(n, d)`` int64 attribute codes (column ``j`` in ``[0, n_values[j])``).
        y: ``(n,)`` int64 class indices in ``[0, n_classes)``.
        n_values: ``(d,)`` number of codes per attribute.
        n_classes: ``K``.
        max_depth: nodes at this depth are leaves.
        policy: decides splits and leaf counts.
        rng: handed to ``policy.begin`` (for randomised policies).

    Returns:
        The tree's :class:`TreeArrays`. Splitting on attribute ``j`` creates
        ``n_values[j]`` children; used attributes are not available below.
    """
    n, d = codes.shape
    k = int(n_classes)
    offsets = np.concatenate([[0], np.cumsum(n_values)]).astype(np.int64)
    n_bins_total = int(offsets[-1])
    shifted = codes + offsets[:-1][None, :]  # flat (attribute, code) index per cell
    root_counts = np.bincount(y, minlength=k).astype(np.float64)
    policy.begin(n_total=n, class_counts=root_counts, rng=rng or np.random.default_rng(0))

    feature: list[int] = [-1]
    first_child: list[int] = [-1]
    parent: list[int] = [-1]
    depth: list[int] = [0]
    counts: list[np.ndarray | None] = [None]
    # stack of (node id, record indices, available attributes)
    stack: list[tuple[int, np.ndarray, np.ndarray]] = [
        (0, np.arange(n), np.ones(d, dtype=bool))
    ]
    while stack:
        node_id, idx, available = stack.pop()
        yy = y[idx]
        class_counts = np.bincount(yy, minlength=k).astype(np.float64)
        node_depth = depth[node_id]
        split: int | None = None
        bin_counts = np.zeros((0, k))
        if node_depth < max_depth and available.any():
            flat = (shifted[idx] * k + yy[:, None]).ravel()
            bin_counts = (
                np.bincount(flat, minlength=n_bins_total * k)
                .reshape(n_bins_total, k)
                .astype(np.float64)
            )
        stats = NodeStats(
            node_id=node_id,
            depth=node_depth,
            n_records=int(idx.size),
            class_counts=class_counts,
            bin_counts=bin_counts,
            offsets=offsets,
            available=available,
            n_total=n,
        )
        if bin_counts.shape[0]:
            split = policy.choose(stats)
        if split is None:
            counts[node_id] = np.asarray(policy.leaf_counts(stats), dtype=np.float64)
            continue
        f = int(split)
        nv = int(n_values[f])
        start = len(feature)
        feature[node_id] = f
        first_child[node_id] = start
        child_available = available.copy()
        child_available[f] = False
        col = codes[idx, f]
        order = np.argsort(col, kind="stable")
        bounds = np.searchsorted(col[order], np.arange(nv + 1))
        for _ in range(nv):
            feature.append(-1)
            first_child.append(-1)
            parent.append(node_id)
            depth.append(node_depth + 1)
            counts.append(None)
        for v in reversed(range(nv)):  # pushed in reverse: value 0 is grown first
            stack.append((start + v, idx[order[bounds[v] : bounds[v + 1]]], child_available))

    n_nodes = len(feature)
    feat = np.asarray(feature, dtype=np.int64)
    cnt = np.zeros((n_nodes, k), dtype=np.float64)
    for i in range(n_nodes):
        if feat[i] < 0:
            cnt[i] = counts[i]
    par = np.asarray(parent, dtype=np.int64)
    for i in range(n_nodes - 1, 0, -1):  # children have larger ids than their parent
        cnt[par[i]] += cnt[i]
    val = np.zeros((n_nodes, k), dtype=np.float64)
    for i in range(n_nodes):  # parents first
        tot = cnt[i].clip(min=0.0).sum()
        if tot > 0:
            val[i] = cnt[i].clip(min=0.0) / tot
        elif par[i] >= 0:
            val[i] = val[par[i]]
        else:
            val[i] = 1.0 / k
    return TreeArrays(
        feature=feat,
        first_child=np.asarray(first_child, dtype=np.int64),
        counts=cnt,
        value=val,
        depth=np.asarray(depth, dtype=np.int64),
    )


# ---------------------------------------------------------------------- greedy ID3 policy


class SplitScore(ABC):
    """A split criterion for :class:`GainPolicy`: one score per attribute, higher is better.

    Scores of attributes that cannot split the node are ignored by the policy; a split is
    taken only when the best score is positive. :meth:`commit` tells the score which split
    was taken (for criteria with global state, such as MID's prediction distribution).
    """

    def begin(self, *, n_total: int, class_counts: np.ndarray) -> None:  # noqa: B027
        """Called once with the root's class counts (optional hook)."""

    @abstractmethod
    def scores(self, node: NodeStats) -> np.ndarray:
        """``(d,)`` float scores of splitting ``node`` on each attribute."""

    def commit(self, node: NodeStats, feature: int) -> None:  # noqa: B027
        """Called when ``node`` is split on ``feature`` (optional hook)."""


def _child_rows(node: NodeStats) -> tuple[np.ndarray, np.ndarray]:
    """Per (attribute, value) row: record count ``n_b`` and entropy ``H_b`` in bits."""
    n_b = node.bin_counts.sum(axis=1)
    return n_b, entropy_bits(node.bin_counts)


class InformationGain(SplitScore):
    """ID3's information gain, on the whole training set's scale.

    For a node with ``n`` of the ``N`` training records, splitting on attribute ``A`` scores
    ``(n/N) · [H(Y | node) − Σ_v (n_v/n) H(Y | node, A = v)]`` bits: the increase of the
    tree's empirical ``I(leaf; Y)``. The ``n/N`` factor does not change which attribute wins
    at a node (plain ID3's choice), and puts the gain on the same scale as MID's penalty.
    """

    def begin(self, *, n_total: int, class_counts: np.ndarray) -> None:  # noqa: D102
        self.n_total = max(int(n_total), 1)

    def scores(self, node: NodeStats) -> np.ndarray:  # noqa: D102
        n_b, h_b = _child_rows(node)
        starts = node.offsets[:-1]
        children = np.add.reduceat(n_b * h_b, starts)
        parent = node.n_records * float(entropy_bits(node.class_counts))
        return (parent - children) / self.n_total


class GainPolicy(SplitPolicy):
    """Greedy ID3: split on the best-scoring admissible attribute if its score is positive.

    An attribute is admissible at a node when it is still available on the path, sends the
    records to at least two non-empty children, and every non-empty child gets at least
    ``min_samples_leaf`` records. Ties go to the lower column index.
    """

    def __init__(self, score: SplitScore, *, min_samples_leaf: int = 1) -> None:
        self.score = score
        self.min_samples_leaf = int(min_samples_leaf)

    def begin(self, *, n_total: int, class_counts: np.ndarray, rng: np.random.Generator) -> None:
        """Reset the score's state for a new tree."""
        super().begin(n_total=n_total, class_counts=class_counts, rng=rng)
        self.score.begin(n_total=n_total, class_counts=class_counts)

    def admissible(self, node: NodeStats) -> np.ndarray:
        """``(d,)`` bool: attributes that may split ``node``."""
        n_b = node.bin_counts.sum(axis=1)
        starts = node.offsets[:-1]
        nonempty = np.add.reduceat((n_b > 0).astype(np.int64), starts)
        smallest = np.minimum.reduceat(np.where(n_b > 0, n_b, np.inf), starts)
        return node.available & (nonempty >= 2) & (smallest >= self.min_samples_leaf)

    def choose(self, node: NodeStats) -> int | None:
        """The best admissible attribute with a positive score, else ``None``."""
        if node.n_records < 2 * self.min_samples_leaf or np.count_nonzero(node.class_counts) < 2:
            return None
        ok = self.admissible(node)
        if not ok.any():
            return None
        sc = np.where(ok, self.score.scores(node), -np.inf)
        best = int(np.argmax(sc))
        if not sc[best] > SCORE_TOL:
            return None
        self.score.commit(node, best)
        return best


# ------------------------------------------------------------------------------ estimators


class _ID3Base(ClassifierMixin, BaseEstimator, metaclass=ABCMeta):
    """Shared ``fit``/``predict`` of the ID3-family classifiers (subclasses give the policy)."""

    def _validate_params(self) -> None:  # extended by subclasses
        check_param(self, "max_depth", self.max_depth, kind="int", low=1)
        check_param(self, "n_bins", self.n_bins, kind="int", low=2)

    @abstractmethod
    def _make_policy(self) -> SplitPolicy:
        """The split policy for one ``fit`` (built from the hyperparameters)."""

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(0)

    def _validate_input(self, X: Any, y: Any = None, *, reset: bool) -> Any:
        """scikit-learn's own input checks (its messages), raised as one-line DataErrors."""
        try:
            if reset:
                Xa, ya = validate_data(self, X, y, reset=True, dtype=np.float64)
                check_classification_targets(ya)
                return Xa, ya
            return validate_data(self, X, reset=False, dtype=np.float64)
        except ValueError as exc:  # TypeErrors (dict cells, sparse input) pass unchanged
            msg = " ".join(str(exc).split())
            raise DataError(f"{type(self).__name__}: {msg}") from None

    def fit(self, X: Any, y: Any) -> _ID3Base:
        """Grow the tree on ``X`` (``(n, d)`` finite floats) and class labels ``y`` (``(n,)``)."""
        self._validate_params()
        Xa, ya = self._validate_input(X, y, reset=True)
        self.classes_, y_idx = np.unique(ya, return_inverse=True)
        self.binner_ = QuantileBinner(n_bins=int(self.n_bins)).fit(Xa)
        codes = self.binner_.transform(Xa)
        self.tree_ = build_tree(
            codes,
            y_idx.astype(np.int64),
            n_values=self.binner_.n_values_,
            n_classes=len(self.classes_),
            max_depth=int(self.max_depth),
            policy=self._make_policy(),
            rng=self._rng(),
        )
        self.leaf_counts_ = self.tree_.counts
        return self

    def apply(self, X: Any) -> np.ndarray:
        """``(n,)`` int64 id of the leaf each row of ``X`` reaches (index ``leaf_counts_``)."""
        check_is_fitted(self, "tree_")
        Xa = self._validate_input(X, reset=False)
        return self.tree_.apply(self.binner_.transform(Xa))

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, K)`` class distribution of the reached leaf (columns follow ``classes_``)."""
        leaves = self.apply(X)
        return self.tree_.value[leaves]

    def predict(self, X: Any) -> np.ndarray:
        """``(n,)`` the most likely class of the reached leaf (ties: the first in ``classes_``)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    @property
    def n_leaves_(self) -> int:
        """Number of leaves of the fitted tree."""
        check_is_fitted(self, "tree_")
        return int(self.tree_.is_leaf.sum())


class ID3Classifier(_ID3Base):
    """Plain ID3 on one-hot categorical and quantile-binned numeric columns.

    Paper: J. R. Quinlan, "Induction of decision trees", Machine Learning 1(1):81-106, 1986.
    Multiway splits on a column's values/bins, chosen by information gain
    (:class:`InformationGain`); splits with zero gain are not taken. Threat model: this is
    the undefended target of the ``map-tree`` attacks.

    Args:
        max_depth: int >= 1, the depth limit.
        n_bins: int >= 2, quantile bins per numeric column.
        min_samples_leaf: int >= 1, the fewest records a non-empty child may get.

    Attributes:
        classes_, n_features_in_, binner_ (:class:`QuantileBinner`), tree_
        (:class:`TreeArrays`), leaf_counts_ (``(n_nodes, K)`` training class counts per node
        id; what :meth:`apply` returns indexes it).

    Example::

        >>> import numpy as np
        >>> X = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
        >>> ID3Classifier(max_depth=3).fit(X, ["a", "a", "b", "b"]).predict(X).tolist()
        ['a', 'a', 'b', 'b']
    """

    def __init__(self, *, max_depth: int = 5, n_bins: int = 4, min_samples_leaf: int = 1) -> None:
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.min_samples_leaf = min_samples_leaf

    def _validate_params(self) -> None:
        super()._validate_params()
        check_param(self, "min_samples_leaf", self.min_samples_leaf, kind="int", low=1)

    def _make_policy(self) -> SplitPolicy:
        return GainPolicy(InformationGain(), min_samples_leaf=int(self.min_samples_leaf))
