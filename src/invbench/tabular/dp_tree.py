"""Differentially private ID3 (DiffP-ID3, Friedman & Schuster, KDD 2010): the DP baseline tree.

Paper: A. Friedman, A. Schuster, "Data Mining with Differential Privacy", KDD 2010
(https://doi.org/10.1145/1835804.1835868). The tree is grown top-down like ID3, but every
statistic it looks at is a noisy count from the Laplace mechanism (sensitivity 1 under the
add/remove-one-record neighbouring relation). With total budget ``B = epsilon`` and depth
limit ``d = max_depth`` the per-query budget is ``ε = B / (2 (d + 1))``. At a node with the
set ``A`` of attributes still unused on its path and ``t = max_{a ∈ A} |a|`` values per
attribute:

1. ``N_T = |T| + Lap(1/ε)``.
2. If ``A`` is empty, the depth limit is reached, or ``N_T / (t·|C|) < √2/ε`` (too few records
   for noisy class counts to be meaningful), the node becomes a leaf with class counts
   ``N_c = |T_c| + Lap(1/ε)`` and predicts ``argmax_c N_c``.
3. Otherwise (``split="noisy-gain"``, the paper's DiffP-ID3) for every attribute ``a ∈ A``
   and value ``j``: ``N_j = |T_{a=j}| + Lap(2|A|/ε)`` and
   ``N_{j,c} = |T_{a=j,c}| + Lap(2|A|/ε)``, and the node splits on the attribute maximising
   ``V_a = Σ_j Σ_c N_{j,c} log2(N_{j,c} / N_j)`` (minus ``|T|`` times the conditional entropy,
   i.e. information gain up to a constant), summing only terms where both noisy counts are
   positive. With ``split="exponential-max"`` (the paper's improved variant) the attribute is
   drawn instead by the exponential mechanism with the Max quality ``q(a) = Σ_j max_c
   |T_{a=j,c}|`` (sensitivity 1): ``Pr[a] ∝ exp(ε q(a) / 2)``. Every value of the chosen
   attribute gets a child, even if no record has it (the algorithm cannot know).

Privacy accounting: the nodes of one depth partition the records (parallel composition);
each spends ``ε`` on ``N_T`` and ``ε`` on either the split choice (``|A|`` attributes x two
histograms x ``ε/(2|A|)``, or one exponential mechanism) or the leaf histogram; over the
``d + 1`` depths that is ``2ε(d + 1) = B``. The released model (structure, noisy leaf counts)
is ``B``-DP. Post-processing: stored leaf counts are clipped at 0, and a leaf whose clipped
counts are all 0 predicts like its parent. Caveat, as in the paper, which assumes discrete
attributes with known domains: the quantile bin edges of numeric columns are taken as public
schema knowledge and are not covered by the guarantee (derive them from public data, or use
categorical columns, if that matters).

Threat model: a defense (the DP baseline of the MID paper's tree experiments); attacked by
``map-tree``.

Example::

    >>> from invbench.tabular.data import synthetic_warfarin
    >>> data = synthetic_warfarin(n=600, seed=0)
    >>> tree = DPID3Classifier(epsilon=1.0, random_state=0).fit(data.X, data.y_class)
    >>> tree.predict(data.X[:3]).shape
    (3,)
"""

from __future__ import annotations

import math

import numpy as np

from invbench.tabular._validation import check_param
from invbench.tabular.id3 import NodeStats, SplitPolicy, _ID3Base

__all__ = ["DPID3Classifier", "DiffPID3Policy"]

_SPLITS = ("noisy-gain", "exponential-max")


class DiffPID3Policy(SplitPolicy):
    """The noisy split/leaf decisions of DiffP-ID3 (see the module docstring).

    Args:
        eps_level: ``ε``, the budget of each query family at one node (``B / (2(d+1))``).
        n_values: ``(d,)`` number of values of each attribute.
        n_classes: ``|C|``.
        split: ``"noisy-gain"`` or ``"exponential-max"``.
    """

    def __init__(
        self, *, eps_level: float, n_values: np.ndarray, n_classes: int, split: str
    ) -> None:
        self.eps = float(eps_level)
        self.n_values = np.asarray(n_values, dtype=np.int64)
        self.n_classes = int(n_classes)
        self.split = split

    def _laplace(self, scale: float, size: int | tuple[int, ...] | None = None) -> np.ndarray:
        return self.rng.laplace(0.0, scale, size=size)

    def choose(self, node: NodeStats) -> int | None:
        """A noisy split decision; ``None`` makes a leaf."""
        avail = np.flatnonzero(node.available)
        t = int(self.n_values[avail].max())
        noisy_n = node.n_records + float(self._laplace(1.0 / self.eps))
        if noisy_n / (t * self.n_classes) < math.sqrt(2.0) / self.eps:
            return None
        starts = node.offsets[:-1]
        if self.split == "exponential-max":
            best_per_value = node.bin_counts.max(axis=1)
            quality = np.add.reduceat(best_per_value, starts)[avail]
            logits = 0.5 * self.eps * quality
            p = np.exp(logits - logits.max())
            return int(avail[self.rng.choice(avail.size, p=p / p.sum())])
        scale = 2.0 * avail.size / self.eps
        n_b = node.bin_counts.sum(axis=1)
        noisy_nj = n_b + self._laplace(scale, n_b.shape)
        noisy_njc = node.bin_counts + self._laplace(scale, node.bin_counts.shape)
        ok = (noisy_njc > 0) & (noisy_nj[:, None] > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ok, noisy_njc / np.where(ok, noisy_nj[:, None], 1.0), 1.0)
            terms = np.where(ok, noisy_njc * np.log2(ratio), 0.0)
        v = np.add.reduceat(terms.sum(axis=1), starts)
        return int(avail[int(np.argmax(v[avail]))])

    def leaf_counts(self, node: NodeStats) -> np.ndarray:
        """``max(0, |T_c| + Lap(1/ε))`` for each class."""
        noisy = node.class_counts + self._laplace(1.0 / self.eps, node.class_counts.shape)
        return np.clip(noisy, 0.0, None)


class DPID3Classifier(_ID3Base):
    """ε-differentially private ID3 (Friedman & Schuster, KDD 2010), the DP baseline tree.

    See the module docstring for the algorithm and its privacy accounting.

    Args:
        epsilon: the total privacy budget ``B`` > 0 (add/remove-one-record adjacency).
        max_depth: int >= 1, the depth limit ``d``.
        n_bins: int >= 2, quantile bins per numeric column (few bins keep ``t`` small).
        split: ``"noisy-gain"`` (DiffP-ID3, default) or ``"exponential-max"``.
        random_state: ``None``, an int seed or a ``numpy.random.Generator``; the noise
            source (``None``: fresh entropy at each ``fit``).

    Attributes:
        classes_, n_features_in_, binner_, tree_, leaf_counts_ (``(n_nodes, K)`` noisy,
        clipped leaf class counts per node id; internal nodes hold the sum of their leaves).

    Example::

        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = (rng.random((2000, 3)) < 0.5).astype(float)
        >>> y = X[:, 0].astype(int)
        >>> tree = DPID3Classifier(epsilon=5.0, max_depth=2, random_state=0).fit(X, y)
        >>> float((tree.predict(X) == y).mean()) > 0.9
        True
    """

    def __init__(
        self,
        *,
        epsilon: float = 1.0,
        max_depth: int = 5,
        n_bins: int = 4,
        split: str = "noisy-gain",
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.epsilon = epsilon
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.split = split
        self.random_state = random_state

    def _validate_params(self) -> None:
        check_param(self, "epsilon", self.epsilon, kind="float", low=0, low_inclusive=False)
        check_param(self, "split", self.split, kind="str", options=_SPLITS)
        if not isinstance(self.random_state, np.random.Generator):
            check_param(self, "random_state", self.random_state, kind="int", low=0,
                        allow_none=True)
        super()._validate_params()

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.random_state)

    @property
    def epsilon_per_query(self) -> float:
        """``ε = B / (2(d + 1))``, the Laplace budget of each query family at a node."""
        return float(self.epsilon) / (2.0 * (int(self.max_depth) + 1))

    def _make_policy(self) -> SplitPolicy:
        return DiffPID3Policy(
            eps_level=self.epsilon_per_query,
            n_values=self.binner_.n_values_,
            n_classes=len(self.classes_),
            split=self.split,
        )
