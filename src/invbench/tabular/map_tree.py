r"""Fredrikson et al.'s MAP attacks on a decision tree (``map-tree``), black-box and white-box.

Papers: M. Fredrikson, E. Lantz, S. Jha, S. Lin, D. Page, T. Ristenpart, "Privacy in
Pharmacogenetics", USENIX Security 2014 (the MAP estimator with an error model); M.
Fredrikson, S. Jha, T. Ristenpart, "Model Inversion Attacks that Exploit Confidence
Information and Basic Countermeasures", CCS 2015, https://doi.org/10.1145/2810103.2813677
(its adaptation to decision trees, black-box and white-box "with counts").

The attacker targets a record whose non-sensitive attributes ``x₋ₛ`` and true label ``y``
(e.g. a patient's demographics and stable-dose band) it knows, and guesses the sensitive
attribute ``s`` (e.g. the VKORC1 genotype) among its ``k`` values. It knows the marginal
prior ``p(v)`` of ``s`` in the population (``fit`` learns it from the attacker's data), and
assumes, like both papers, that ``s`` is independent of ``x₋ₛ`` a priori.

``mode="black-box"`` — threat model: query access to the predicted label. The error model
is the model's confusion matrix ``C[y, ŷ]`` on the attacker's data (add-one smoothed);
``π(y | ŷ) = C[y, ŷ] / Σ_y' C[y', ŷ]`` is the chance that the true label is ``y`` when the
model says ``ŷ``. The guess is::

    ŝ = argmax_v  p(v) · π(y | f(x₋ₛ, v)).

``mode="white-box"`` — threat model: the tree itself, with the training class counts stored
at its leaves (``leaf_counts_`` of this package's trees; noisy for the DP tree). For each
candidate ``v`` let ``ℓ(v)`` be the leaf reached by ``(x₋ₛ, v)`` and ``n_{ℓ,y}`` its count of
training records of class ``y``. The counts are joint counts of (path, ``y``); a leaf whose
path does not separate some candidate values holds records of all of them, so its mass is
shared among those values in proportion to the prior. The estimator ("MAP with counts")::

    ŝ = argmax_v  n_{ℓ(v), y} · p(v) / Σ_{v' : ℓ(v') = ℓ(v)} p(v').

When the tree never tests ``s`` on the record's path this is the prior's argmax; when it
separates every value it is the value whose leaf holds the most training records like the
target (the leaf counts already carry the prior, so it is not applied twice). Ties (e.g. all
counts 0) go to the value with the larger prior.

Foreign models (e.g. scikit-learn's ``DecisionTreeClassifier``) can be attacked in black-box
mode; white-box mode needs this package's ID3-family trees and raises
:class:`~invbench.errors.AccessError` otherwise.

Example::

    >>> from invbench.tabular.data import synthetic_warfarin
    >>> from invbench.tabular.mid_tree import MIDDecisionTreeClassifier
    >>> data = synthetic_warfarin(n=800, seed=0)
    >>> tree = MIDDecisionTreeClassifier(lam=0.0, max_depth=5).fit(data.X, data.y_class)
    >>> attack = MAPTreeAttack(mode="white-box").fit(tree, data)
    >>> attack.infer(tree, data).shape
    (800,)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from invbench.errors import AccessError, ConfigError, DataError
from invbench.tabular._validation import check_param
from invbench.tabular.data import TabularData
from invbench.tabular.id3 import _ID3Base

__all__ = ["MAPTreeAttack"]

_MODES = ("black-box", "white-box")


class MAPTreeAttack(BaseEstimator):
    """MAP inference of a sensitive attribute from a decision tree (Fredrikson 2014/2015).

    See the module docstring for both estimators and their threat models.

    Arguments:
        mode: ``"black-box"`` (predicted labels + a confusion-matrix error model) or
            ``"white-box"`` (the tree's leaf class counts).
        prior: ``"marginal"`` (default; frequencies of the sensitive values in the attacker's
            data) or ``"uniform"``.

    Attributes (after ``fit``):
        prior_: ``(k,)`` prior of the sensitive values. labels_: the class labels of the error
        model. confusion_: ``(L, L)`` smoothed counts ``C[y_true, y_pred]`` (black-box).
        error_model_: ``(L, L)`` ``π(y | ŷ)``, columns sum to 1 (black-box).

    Shape:
        ``infer`` returns ``(n,)`` int64 codes in ``[0, k)``; ``scores`` ``(n, k)``
        non-negative, rows summing to 1 (the attack's posterior over the values).

    Example::

        >>> from invbench.tabular.data import synthetic_warfarin
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> data = synthetic_warfarin(n=800, seed=0)
        >>> tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(data.X, data.y_class)
        >>> MAPTreeAttack(mode="black-box").fit(tree, data).infer(tree, data).shape
        (800,)
    """

    def __init__(self, *, mode: str = "black-box", prior: str = "marginal") -> None:
        self.mode = mode
        self.prior = prior

    @property
    def access(self) -> str:
        """The access level this attack needs (``"black-box"`` or ``"white-box"``)."""
        return str(self.mode)

    def _check_model(self, model: Any, data: TabularData) -> None:
        if not hasattr(model, "predict"):
            raise ConfigError(
                f"MAPTreeAttack needs a fitted classifier with predict(); got {model!r}"
            )
        if self.mode == "white-box" and not isinstance(model, _ID3Base):
            raise AccessError(
                f"MAPTreeAttack(mode='white-box') needs the leaf class counts of an invbench "
                f"ID3-family tree (ID3Classifier, MIDDecisionTreeClassifier, DPID3Classifier); "
                f"got {type(model).__name__}: use mode='black-box'"
            )
        n_in = getattr(model, "n_features_in_", None)
        if n_in is not None and int(n_in) != data.X.shape[1]:
            raise DataError(
                f"MAPTreeAttack: the model was fitted on {n_in} features but the data has "
                f"{data.X.shape[1]}"
            )

    def fit(self, model: Any, data: TabularData) -> MAPTreeAttack:
        """Learn the prior ``p(v)`` and (black-box) the confusion matrix of ``model``."""
        check_param(self, "mode", self.mode, kind="str", options=_MODES)
        prior = check_param(self, "prior", self.prior, kind="str", options=("marginal", "uniform"))
        self._check_model(model, data)
        k = len(data.sensitive_values())
        if data.n < 1:
            raise DataError("MAPTreeAttack.fit needs at least one record")
        if prior == "uniform":
            p = np.full(k, 1.0 / k)
        else:
            p = np.bincount(data.s, minlength=k).astype(np.float64)
            p /= p.sum()
        self.prior_ = p
        self.n_values_ = k
        if self.mode == "black-box":
            pred = np.asarray(model.predict(data.X))
            labels = np.union1d(np.unique(data.y_class), np.unique(pred))
            if hasattr(model, "classes_"):  # labels the model could output elsewhere
                labels = np.union1d(labels, np.asarray(model.classes_))
            t = np.searchsorted(labels, data.y_class)
            q = np.searchsorted(labels, pred)
            conf = np.ones((labels.size, labels.size), dtype=np.float64)  # add-one smoothing
            np.add.at(conf, (t, q), 1.0)
            self.labels_ = labels
            self.confusion_ = conf
            self.error_model_ = conf / conf.sum(axis=0, keepdims=True)
        else:
            self.labels_ = np.asarray(model.classes_)
        return self

    def scores(self, model: Any, data: TabularData) -> np.ndarray:
        """``(n, k)`` posterior of each sensitive value per record (rows sum to 1).

        Uses only the non-sensitive columns of ``data.X`` (the sensitive one-hot is
        overwritten with each candidate) and the observed label ``data.y_class``.
        """
        if not hasattr(self, "prior_"):
            raise ConfigError("MAPTreeAttack: call fit(model, data) before infer()")
        self._check_model(model, data)
        k = len(data.sensitive_values())
        if k != self.n_values_:
            raise DataError(
                f"MAPTreeAttack was fitted for {self.n_values_} sensitive values; the data "
                f"has {k}"
            )
        n = data.n
        if self.mode == "black-box":
            out = np.empty((n, k), dtype=np.float64)
            y_idx = np.searchsorted(self.labels_, data.y_class).clip(0, self.labels_.size - 1)
            known_y = self.labels_[y_idx] == data.y_class
            for v in range(k):
                pred = np.asarray(model.predict(data.with_sensitive(data.X, v)))
                q = np.searchsorted(self.labels_, pred).clip(0, self.labels_.size - 1)
                lik = self.error_model_[y_idx, q]
                out[:, v] = self.prior_[v] * np.where(known_y, lik, 1.0)
        else:
            leaves = np.stack(
                [model.apply(data.with_sensitive(data.X, v)) for v in range(k)], axis=1
            )  # (n, k)
            classes = np.asarray(model.classes_)
            y_idx = np.searchsorted(classes, data.y_class).clip(0, classes.size - 1)
            known_y = classes[y_idx] == data.y_class
            counts = np.where(known_y[:, None], model.leaf_counts_[leaves, y_idx[:, None]], 0.0)
            counts = np.clip(counts, 0.0, None)
            same = leaves[:, :, None] == leaves[:, None, :]  # (n, v, v')
            shared_mass = (same * self.prior_[None, None, :]).sum(axis=2)  # (n, k)
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(shared_mass > 0, counts * self.prior_ / shared_mass, 0.0)
        tot = out.sum(axis=1, keepdims=True)
        return np.where(tot > 0, out / np.where(tot > 0, tot, 1.0), self.prior_[None, :])

    def infer(self, model: Any, data: TabularData) -> np.ndarray:
        """``(n,)`` int64 MAP guesses of the sensitive code of every record of ``data``."""
        sc = self.scores(model, data)
        order = np.argsort(-self.prior_, kind="stable")  # ties -> the larger prior
        return order[np.argmax(sc[:, order], axis=1)].astype(np.int64)
