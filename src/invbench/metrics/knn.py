"""Nearest-neighbour distance to the private training data of the attacked class.

GMI's "KNN Dist" (Zhang et al., CVPR 2020, https://arxiv.org/abs/1911.07135): for each
reconstruction, the distance in the evaluation model's penultimate feature space to the
closest private *training* image of the same class, averaged over reconstructions. Lower
means the reconstruction is closer to a real private image.

Convention (used consistently here): distances are **squared** L2, as GMI reports them.

* ``knn_dist``: squared L2 between evaluator features, ``min_j ||f(x) - f(x_j)||^2``.
* ``knn_pixel_dist``: squared L2 between raw pixels divided by the number of pixel values
  ``C*H*W`` (the mean squared pixel error to the nearest same-class training image, in
  [0, 1]); resolution-independent and meaningful on tiny images.

The helpers :func:`nearest_same_class` (distance and index) and
:func:`nearest_same_class_sq_dist` are shared with the ``pixel`` (PSNR/SSIM to the nearest
training image) and ``feat-dist`` metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics.base import Metric, MetricOutput
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction


def nearest_same_class(
    queries: Tensor, query_labels: Tensor, refs: Tensor, ref_labels: Tensor
) -> tuple[Tensor, Tensor]:
    """The nearest reference of each query's own class: squared L2 distance and its index.

    Args:
        queries: (N, D) float; query_labels: (N,) int.
        refs: (M, D) float, same device; ref_labels: (M,) int.

    Returns:
        ``(sq_dist, index)``: (N,) float64 squared distances and (N,) int64 indices into
        ``refs`` (the first of equally near references). Raises :class:`DataError` if a
        query's class has no reference. Computed one class at a time with exact
        ``torch.cdist`` (no matmul shortcut, so equal vectors give exactly 0).

    Example: queries ``[[0, 0]]`` labelled 0, refs ``[[3, 4], [1, 1], [6, 8]]`` labelled
    ``[0, 1, 0]`` -> ``([25.0], [0])``.
    """
    dist = torch.empty(queries.shape[0], dtype=torch.float64, device=queries.device)
    index = torch.empty(queries.shape[0], dtype=torch.long, device=queries.device)
    q64, r64 = queries.double(), refs.double()
    for c in torch.unique(query_labels).tolist():
        qmask = query_labels == c
        rmask = ref_labels == c
        if not bool(rmask.any()):
            raise DataError(
                f"class {c} has no private training images to compare reconstructions with"
            )
        d = torch.cdist(
            q64[qmask][None], r64[rmask][None], compute_mode="donot_use_mm_for_euclid_dist"
        )[0]
        best = d.min(dim=1)
        dist[qmask] = best.values.square()
        index[qmask] = rmask.nonzero().flatten()[best.indices]
    return dist, index


def nearest_same_class_sq_dist(
    queries: Tensor, query_labels: Tensor, refs: Tensor, ref_labels: Tensor
) -> Tensor:
    """Squared L2 distance from each query to the nearest reference of its own class.

    The distances of :func:`nearest_same_class` (same arguments, shapes and errors):
    (N,) float64.

    Example: queries ``[[0, 0]]`` labelled 0, refs ``[[3, 4], [1, 1]]`` labelled ``[0, 1]``
    -> ``[25.0]``.
    """
    return nearest_same_class(queries, query_labels, refs, ref_labels)[0]


@register_metric("knn")
class KnnDistance(Metric):
    """Squared L2 distance to the nearest same-class private training image (GMI "KNN Dist").

    Paper: Zhang et al., "The Secret Revealer", CVPR 2020; MIBench (2024) calls it δ_eval.

    Returns ``knn_dist`` (in the standard evaluator's feature space; MIBench's δ_eval) and
    ``knn_pixel_dist`` (in pixel space, divided by the number of pixel values ``C*H*W``),
    each averaged over reconstructions; both >= 0, lower = closer to the private data. Per
    image: ``img_knn_dist``. Private features are computed once per evaluator
    (:meth:`Evaluator.private_features`).

    Example::

        KnnDistance().compute(recon, ctx)  # {"knn_dist": 41.2, ...}
    """

    keys = ("knn_dist", "knn_pixel_dist")
    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        protocol, evaluator = ctx.protocol, ctx.standard
        train_feats, train_labels = evaluator.private_features(protocol)
        feats = evaluator.features(recon.images)
        labels = recon.labels.to(feats.device).long()
        knn = nearest_same_class_sq_dist(feats, labels, train_feats, train_labels)

        dev = feats.device
        train = protocol.private_train
        n_pix = recon.images[0].numel()
        pix = nearest_same_class_sq_dist(
            recon.images.to(dev).flatten(1),
            labels,
            train.x.to(dev).flatten(1),
            train.y.to(dev).long(),
        )
        return {
            "knn_dist": float(knn.mean()),
            "knn_pixel_dist": float(pix.mean() / n_pix),
            "img_knn_dist": knn.float(),
        }
