"""Feature distance to the nearest same-class private image under a second, independent extractor.

MIBench's δ_face (Qiu et al., "MIBench: A Comprehensive Framework for Benchmarking Model
Inversion Attack and Defense", 2024, https://arxiv.org/abs/2410.05159): GMI's KNN distance
(Zhang et al., CVPR 2020, https://arxiv.org/abs/1911.07135) measured with a feature
extractor that is neither the target nor the evaluation model. MIBench uses FaceNet; here it
is ``ctx.extractor``, an independently trained classifier of another architecture family,
trained on the protocol's private data. For face data a user can plug in their own
extractor (e.g. a FaceNet): wrap it in an :class:`~invbench.metrics.evaluator.Evaluator`
whose model has ``features(x)`` and pass it as ``EvalContext(extractor=...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invbench.metrics.base import Metric, MetricOutput
from invbench.metrics.knn import nearest_same_class_sq_dist
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction


@register_metric("feat-dist")
class FeatureDistance(Metric):
    """Squared L2 to the nearest same-class private training image in the extractor's features.

    Paper: MIBench (Qiu et al., 2024), δ_face; GMI's KNN distance (Zhang et al., CVPR 2020).

    Feature space: the penultimate features of ``ctx.extractor`` (a second, independently
    trained feature extractor of another architecture family; MIBench's δ_face, which uses
    FaceNet — for face data plug in your own extractor as ``EvalContext(extractor=...)``).
    For each reconstruction, ``min_j ||f(x) - f(x_j)||^2`` over the private training images
    ``x_j`` of its class (squared, as ``knn_dist``); ``feat_dist`` is the mean over
    reconstructions, ``img_feat_dist`` the per-image values. >= 0; lower = closer to the
    private data (better for the attacker). The private features are computed once per
    extractor (:meth:`Evaluator.private_features`).

    Example::

        evaluate(recon, ctx, metrics=["feat-dist"])   # {"feat_dist": 3.7}
    """

    requires = ("extractor",)
    rates = ()
    keys = ("feat_dist",)

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        extractor = ctx.extractor
        assert extractor is not None  # judge() checks requires
        train_feats, train_labels = extractor.private_features(ctx.protocol)
        feats = extractor.features(recon.images)
        labels = recon.labels.to(feats.device).long()
        dist = nearest_same_class_sq_dist(feats, labels, train_feats, train_labels)
        return {
            "feat_dist": float(dist.mean()) if len(recon) else None,
            "img_feat_dist": dist.float(),
        }
