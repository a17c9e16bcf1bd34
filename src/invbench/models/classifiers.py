"""Image classifiers: target architectures per resolution and a separate evaluator family.

Every classifier is a :class:`Classifier`: a feature extractor (``features``) followed by a
linear ``head``. Defenses rely on that split (MID swaps the head for a variational
bottleneck, BiDO regularises the features) and metrics use ``features`` of the evaluation
model for k-NN distances.

Targets (what attacks invert), one family of plain VGG-style CNNs:

- ``cnn-s``: 3 conv layers, for 8x8 images (digits); ``feat_dim = 128``.
- ``cnn-m``: 5 conv layers, for 28/32 px (MNIST, Fashion-MNIST); ``feat_dim = 256``.
- ``cnn-l``: 6 conv layers, for 64 px (faces); ``feat_dim = 256``.
- ``auto``: ``cnn-s`` up to 16 px, ``cnn-m`` up to 32 px, ``cnn-l`` above.

Evaluators (judges of reconstructions), deliberately a *different* architecture so that an
attack cannot score well by exploiting the target's own quirks:

- ``resnet``: a small pre-activation residual network (He et al. 2016, "Identity Mappings
  in Deep Residual Networks", https://arxiv.org/abs/1603.05027) with a 5x5 stem, one block
  per stage, different widths, global average pooling.
- ``mlp``: two hidden layers on the flattened image.

All of them take images in [0, 1] of shape (B, C, H, W) with any channel count, normalise to
[-1, 1] internally, and end in adaptive pooling, so any size at or above the architecture's
minimum works. Example::

    model = make_classifier("auto", image_shape=(1, 8, 8), num_classes=5)
    logits = model(torch.rand(4, 1, 8, 8))          # (4, 5)
    feats = model.features(torch.rand(4, 1, 8, 8))  # (4, model.feat_dim)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from invbench.errors import ConfigError

TARGET_ARCHS: tuple[str, ...] = ("auto", "cnn-s", "cnn-m", "cnn-l")
EVALUATOR_ARCHS: tuple[str, ...] = ("resnet", "mlp")

# Smallest height/width each architecture accepts (pooling stages need something to pool).
_MIN_SIDE: dict[str, int] = {"cnn-s": 4, "cnn-m": 8, "cnn-l": 16, "resnet": 4, "mlp": 1}


class Classifier(nn.Module):
    """A classifier split into ``features`` (B, C, H, W) -> (B, feat_dim) and a linear ``head``.

    Attributes:
        arch: the concrete architecture name (``"cnn-s"``, ``"resnet"``, ...).
        image_shape: ``(C, H, W)`` the model was built for.
        num_classes: width of the logits.
        feat_dim: width of ``features(x)``.
        head: ``nn.Linear(feat_dim, num_classes)``; replaceable (e.g. by a defense) with any
            module mapping (B, feat_dim) to (B, num_classes).

    Shape:
        input (B, C, H, W) float in [0, 1]; ``forward`` returns logits (B, num_classes).
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        feat_dim: int,
        num_classes: int,
        arch: str,
        image_shape: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.arch = arch
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.body = body
        self.head: nn.Module = nn.Linear(feat_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, feat_dim) of images ``x`` (B, C, H, W) in [0, 1]."""
        return self.body(x * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) of images ``x`` (B, C, H, W) in [0, 1]."""
        return self.head(self.features(x))


def _conv_bn(cin: int, cout: int, kernel: int = 3) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


def _cnn_s(c: int) -> tuple[nn.Module, int]:
    body = nn.Sequential(
        *_conv_bn(c, 32),
        *_conv_bn(32, 64),
        nn.MaxPool2d(2),
        *_conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 4, 128),
        nn.ReLU(inplace=True),
    )
    return body, 128


def _cnn_m(c: int) -> tuple[nn.Module, int]:
    body = nn.Sequential(
        *_conv_bn(c, 32),
        *_conv_bn(32, 32),
        nn.MaxPool2d(2),
        *_conv_bn(32, 64),
        *_conv_bn(64, 64),
        nn.MaxPool2d(2),
        *_conv_bn(64, 128),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 4, 256),
        nn.ReLU(inplace=True),
    )
    return body, 256


def _cnn_l(c: int) -> tuple[nn.Module, int]:
    body = nn.Sequential(
        *_conv_bn(c, 32),
        nn.MaxPool2d(2),
        *_conv_bn(32, 64),
        *_conv_bn(64, 64),
        nn.MaxPool2d(2),
        *_conv_bn(64, 128),
        *_conv_bn(128, 128),
        nn.MaxPool2d(2),
        *_conv_bn(128, 256),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(256 * 4, 256),
        nn.ReLU(inplace=True),
    )
    return body, 256


class PreActBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 plus shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, cin, H, W) -> (B, cout, H/stride, W/stride)."""
        out = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


def _resnet(c: int, height: int) -> tuple[nn.Module, int]:
    stem_stride = 1
    if height <= 16:
        stages: Sequence[tuple[int, int]] = ((40, 1), (80, 2), (160, 2))
    elif height <= 32:
        stages = ((32, 1), (64, 2), (128, 2), (192, 2))
    else:
        stem_stride = 2
        stages = ((32, 1), (64, 2), (128, 2), (256, 2))
    width = stages[0][0]
    layers: list[nn.Module] = [
        nn.Conv2d(c, width, 5, stride=stem_stride, padding=2, bias=False),
    ]
    for cout, stride in stages:
        layers.append(PreActBlock(width, cout, stride))
        width = cout
    layers += [
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ]
    return nn.Sequential(*layers), width


def _mlp(c: int, h: int, w: int) -> tuple[nn.Module, int]:
    body = nn.Sequential(
        nn.Flatten(),
        nn.Linear(c * h * w, 512),
        nn.ReLU(inplace=True),
        nn.Linear(512, 256),
        nn.ReLU(inplace=True),
    )
    return body, 256


_BUILDERS: dict[str, Callable[[int, int, int], tuple[nn.Module, int]]] = {
    "cnn-s": lambda c, h, w: _cnn_s(c),
    "cnn-m": lambda c, h, w: _cnn_m(c),
    "cnn-l": lambda c, h, w: _cnn_l(c),
    "resnet": lambda c, h, w: _resnet(c, h),
    "mlp": _mlp,
}


def list_archs() -> list[str]:
    """Every name :func:`make_classifier` accepts: target archs first, then evaluator archs."""
    return [*TARGET_ARCHS, *EVALUATOR_ARCHS]


def check_image_shape(image_shape: object, *, what: str = "image_shape") -> tuple[int, int, int]:
    """Return ``image_shape`` as a ``(C, H, W)`` tuple of positive ints or raise ConfigError."""
    try:
        shape = tuple(int(s) for s in image_shape)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what} must be a (channels, height, width) tuple of ints, got {image_shape!r}"
        ) from None
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(
            f"{what} must be (channels, height, width) with every entry >= 1, got {image_shape!r}"
        )
    return shape  # type: ignore[return-value]


def resolve_arch(arch: str, image_shape: tuple[int, int, int]) -> str:
    """The concrete architecture ``arch`` names for ``image_shape`` (resolves ``"auto"``)."""
    if arch not in list_archs():
        raise ConfigError(f"unknown arch '{arch}'; choose one of: {', '.join(list_archs())}")
    if arch != "auto":
        return arch
    height = check_image_shape(image_shape)[1]
    if height <= 16:
        return "cnn-s"
    if height <= 32:
        return "cnn-m"
    return "cnn-l"


def evaluator_arch(image_shape: tuple[int, int, int]) -> str:
    """The default evaluation-model architecture for ``image_shape`` (always ``"resnet"``).

    It differs from every target architecture, so reconstructions are judged by a model
    that shares no weights and no design with the model they were extracted from.
    """
    check_image_shape(image_shape)
    return "resnet"


def make_classifier(
    arch: str, *, image_shape: tuple[int, int, int], num_classes: int
) -> Classifier:
    """Build an untrained :class:`Classifier` (initialised from torch's global RNG).

    Args:
        arch: one of :func:`list_archs` (``"auto"`` picks by image height).
        image_shape: ``(C, H, W)`` of the inputs; any channel count, H and W at least the
            architecture's minimum (cnn-s/resnet 4, cnn-m 8, cnn-l 16).
        num_classes: number of output logits (>= 2).

    Raises:
        ConfigError: unknown ``arch``, malformed or too small ``image_shape``, or
            ``num_classes`` < 2.

    Example::

        torch.manual_seed(0)
        model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    """
    shape = check_image_shape(image_shape)
    name = resolve_arch(arch, shape)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2, got {num_classes!r}")
    c, h, w = shape
    need = _MIN_SIDE[name]
    if min(h, w) < need:
        raise ConfigError(
            f"arch '{name}' needs images of at least {need}x{need} pixels, got image_shape {shape}"
        )
    body, feat_dim = _BUILDERS[name](c, h, w)
    return Classifier(
        body, feat_dim=feat_dim, num_classes=num_classes, arch=name, image_shape=shape
    )
