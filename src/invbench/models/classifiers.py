"""Image classifiers: target architectures per resolution, evaluator and surrogate families.

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
- ``vit``: a small Vision Transformer (Dosovitskiy et al., "An Image is Worth 16x16 Words:
  Transformers for Image Recognition at Scale", ICLR 2021, https://arxiv.org/abs/2010.11929):
  strided-conv patch embedding (2 px patches up to 16 px, 4 px up to 32 px, 8 px above),
  learned position embeddings, 4 pre-LayerNorm blocks of width 64 with 4 heads and a GELU
  MLP of width 128, mean-pooled tokens and a final LayerNorm; ``feat_dim = 64``. Height and
  width must be multiples of the patch size.
- ``dense``: a small DenseNet-BC (Huang et al., "Densely Connected Convolutional Networks",
  CVPR 2017, https://arxiv.org/abs/1608.06993): growth rate 12, three dense blocks of
  bottleneck layers, transitions with compression 0.5, BN-ReLU-global pooling and a linear
  projection to ``feat_dim = 64`` at every resolution (it is the robust evaluator whose
  features FID and KID use, so the feature width must stay small and fixed).

Surrogates (models an attack distils from the target, e.g. LOMMA's model augmentation,
:mod:`invbench.attacks.components.model_augmentation`), a third group of families that is
neither a target nor an evaluator family, so an attack that ensembles surrogates never
shares a design with the model that judges it:

- ``mobile``: MobileNet-style depthwise-separable convolutions (Howard et al. 2017,
  "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
  https://arxiv.org/abs/1704.04861): a 3x3 stem of width 32, then blocks of a 3x3
  depthwise conv and a 1x1 pointwise conv (each BN-ReLU), widths 64-128-128-256 (plus
  256-256 above 16 px), downsampling by stride-2 depthwise convs, global average pooling;
  ``feat_dim = 256``. Height at least 8.
- ``squeeze``: SqueezeNet-style Fire modules (Iandola et al. 2016, "SqueezeNet:
  AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
  https://arxiv.org/abs/1602.07360): a 1x1 "squeeze" conv feeding parallel 1x1 and 3x3
  "expand" convs whose outputs are concatenated (with BatchNorm, which the paper's
  network lacks, so it trains from scratch on small data), max-pooling between pairs of
  Fire modules, a final 1x1 conv to ``feat_dim = 256`` and global average pooling.
  Height at least 8.

The three groups never overlap: :func:`invbench.metrics.train_evaluator` refuses any arch
outside ``EVALUATOR_ARCHS`` (so targets and surrogates alike), and LOMMA builds surrogates
from ``SURROGATE_ARCHS`` only.

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
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.errors import ConfigError

TARGET_ARCHS: tuple[str, ...] = ("auto", "cnn-s", "cnn-m", "cnn-l")
EVALUATOR_ARCHS: tuple[str, ...] = ("resnet", "mlp", "vit", "dense")
#: families for models an attack distils from the target (LOMMA); neither target nor evaluator
SURROGATE_ARCHS: tuple[str, ...] = ("mobile", "squeeze")

# Smallest height/width each architecture accepts (pooling stages need something to pool,
# a transformer at least one patch).
_MIN_SIDE: dict[str, int] = {
    "cnn-s": 4,
    "cnn-m": 8,
    "cnn-l": 16,
    "resnet": 4,
    "mlp": 1,
    "vit": 2,
    "dense": 4,
    "mobile": 8,
    "squeeze": 8,
}


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

    def blocks(self) -> list[nn.Module]:
        """The body's ordered blocks, ending in the penultimate features.

        For a sequential body of layers (the target families ``cnn-*`` and ``mlp``) a block
        ends after every activation: ``conv, BatchNorm, ReLU`` (a pooling layer opens the
        next block), the last block is the pooling/flatten/linear stage that gives
        :meth:`features`; a composite child (``resnet``'s pre-activation blocks,
        ``dense``'s dense layers) is a block of its own. Each
        block is an ``nn.Sequential`` sharing the body's modules, so freezing a block's
        parameters (TL-DMI) freezes the body's, and ``blocks()[i]`` is the same
        ``hidden(x)[i]`` producer every call. Running the blocks in order is the body.

        Raises:
            ConfigError: a body that is not ``nn.Sequential`` (``vit``).
        """
        from invbench.errors import ConfigError

        if not isinstance(self.body, nn.Sequential):
            raise ConfigError(
                f"classifier '{self.arch}' has no sequential body, so no blocks; blocks are "
                f"defined for the target families ({', '.join(TARGET_ARCHS[1:])}) and the "
                f"sequential evaluator families"
            )
        groups: list[list[nn.Module]] = [[]]
        for layer in self.body:
            if next(layer.children(), None) is not None:  # a composite block of its own
                if groups[-1]:
                    groups.append([])
                groups[-1].append(layer)
                groups.append([])
                continue
            groups[-1].append(layer)
            if isinstance(layer, _ACTIVATIONS):
                groups.append([])
        if not groups[-1]:
            groups.pop()
        return [nn.Sequential(*g) for g in groups]

    def hidden(self, x: Tensor) -> list[Tensor]:
        """Every block's output for images ``x`` in [0, 1]; the last is ``features(x)``.

        Shapes: ``(B, C_i, H_i, W_i)`` for convolutional blocks, ``(B, feat_dim)`` last.
        """
        out, h = [], x * 2.0 - 1.0
        for block in self.blocks():
            h = block(h)
            out.append(h)
        return out

    @property
    def feature_module(self) -> nn.Module:
        """The module whose output is :meth:`features` (``body``): hook it to read the
        features of a forward pass without a second pass."""
        return self.body

    def forward(self, x: Tensor) -> Tensor:
        """Logits (B, num_classes) of images ``x`` (B, C, H, W) in [0, 1]."""
        return self.head(self.features(x))


#: layers that end a block of a sequential body (see :meth:`Classifier.blocks`)
_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.LeakyReLU, nn.SiLU)


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


# --------------------------------------------------------------------------- vision transformer

VIT_DIM, VIT_DEPTH, VIT_HEADS, VIT_MLP_RATIO = 64, 4, 4, 2


def vit_patch_size(height: int) -> int:
    """Patch side of the ``vit`` evaluator: 2 up to 16 px, 4 up to 32 px (28 -> 7x7), else 8."""
    if height <= 16:
        return 2
    if height <= 32:
        return 4
    return 8


class ViTBlock(nn.Module):
    """Pre-LayerNorm transformer block: ``t + MHSA(LN(t))`` then ``t + MLP(LN(t))`` (GELU).

    Shape: tokens (B, T, dim) -> (B, T, dim).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        if dim % heads:
            raise ConfigError(f"vit: dim {dim} must be a multiple of heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        """(B, T, dim) -> (B, T, dim)."""
        b, n, d = t.shape
        qkv = self.qkv(self.norm1(t)).view(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, T, d/heads)
        att = F.scaled_dot_product_attention(q, k, v)
        t = t + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return t + self.mlp(self.norm2(t))


class _ViTBody(nn.Module):
    def __init__(self, c: int, h: int, w: int) -> None:
        super().__init__()
        patch = vit_patch_size(h)
        if h % patch or w % patch:
            raise ConfigError(
                f"arch 'vit' uses {patch}x{patch} patches at height {h}, so height and width "
                f"must be multiples of {patch}, got image_shape {(c, h, w)}"
            )
        self.embed = nn.Conv2d(c, VIT_DIM, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, (h // patch) * (w // patch), VIT_DIM))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(
            *(ViTBlock(VIT_DIM, VIT_HEADS, VIT_MLP_RATIO) for _ in range(VIT_DEPTH))
        )
        self.norm = nn.LayerNorm(VIT_DIM)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2) + self.pos  # (B, T, dim)
        return self.norm(self.blocks(tokens).mean(1))


def _vit(c: int, h: int, w: int) -> tuple[nn.Module, int]:
    return _ViTBody(c, h, w), VIT_DIM


# --------------------------------------------------------------------------- DenseNet-BC

DENSE_GROWTH, DENSE_LAYERS, DENSE_FEAT_DIM = 12, 4, 64


class DenseLayer(nn.Module):
    """DenseNet-BC bottleneck layer: BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), concatenated.

    Shape: (B, cin, H, W) -> (B, cin + growth, H, W).
    """

    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, cin, H, W) -> (B, cin + growth, H, W)."""
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


def _dense(c: int, h: int, w: int) -> tuple[nn.Module, int]:
    growth = DENSE_GROWTH
    stem_stride = 2 if h > 16 else 1  # 28 px -> 14 -> 7, 64 px -> 32 -> 16 -> 8
    width = 2 * growth
    layers: list[nn.Module] = [
        nn.Conv2d(c, width, 3, stride=stem_stride, padding=1, bias=False),
    ]
    side = -(-min(h, w) // stem_stride)
    for block in range(3):
        for _ in range(DENSE_LAYERS):
            layers.append(DenseLayer(width, growth))
            width += growth
        if block < 2:  # transition: BN-ReLU-conv1x1 (compression 0.5), avg-pool unless tiny
            layers += [
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width // 2, 1, bias=False),
            ]
            width //= 2
            if side > 8:
                layers.append(nn.AvgPool2d(2))
                side //= 2
    layers += [
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, DENSE_FEAT_DIM),
    ]
    return nn.Sequential(*layers), DENSE_FEAT_DIM


# --------------------------------------------------------------------------- surrogates


class DepthwiseSeparable(nn.Module):
    """MobileNet block: 3x3 depthwise conv (stride) -BN-ReLU, then 1x1 pointwise -BN-ReLU.

    Shape: (B, cin, H, W) -> (B, cout, ceil(H/stride), ceil(W/stride)).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor) -> Tensor:
        """(B, cin, H, W) -> (B, cout, H', W')."""
        x = torch.relu(self.bn1(self.depthwise(x)))
        return torch.relu(self.bn2(self.pointwise(x)))


MOBILE_FEAT_DIM = 256


def _mobile(c: int, h: int) -> tuple[nn.Module, int]:
    stem_stride = 2 if h > 32 else 1  # 64 px -> 32 before the blocks
    stages: Sequence[tuple[int, int]] = ((64, 1), (128, 2), (128, 1), (256, 2))
    if h > 16:  # 28 -> 14 -> 7 -> 4, 32/64 -> 16 -> 8 -> 4
        stages = (*stages, (256, 1), (MOBILE_FEAT_DIM, 2))
    width = 32
    layers: list[nn.Module] = [
        nn.Conv2d(c, width, 3, stride=stem_stride, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
    ]
    for cout, stride in stages:
        layers.append(DepthwiseSeparable(width, cout, stride))
        width = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), MOBILE_FEAT_DIM


class Fire(nn.Module):
    """SqueezeNet Fire module: 1x1 squeeze -BN-ReLU, then 1x1 and 3x3 expands, concatenated.

    Shape: (B, cin, H, W) -> (B, 2 * expand, H, W).
    """

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(*_conv_bn(cin, squeeze, kernel=1))
        self.expand1 = nn.Sequential(*_conv_bn(squeeze, expand, kernel=1))
        self.expand3 = nn.Sequential(*_conv_bn(squeeze, expand, kernel=3))

    def forward(self, x: Tensor) -> Tensor:
        """(B, cin, H, W) -> (B, 2 * expand, H, W)."""
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


SQUEEZE_FEAT_DIM = 256


def _squeeze(c: int, h: int) -> tuple[nn.Module, int]:
    stem_stride = 2 if h > 32 else 1
    layers: list[nn.Module] = [
        nn.Conv2d(c, 64, 3, stride=stem_stride, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        Fire(64, 16, 64),
        Fire(128, 16, 64),
        nn.MaxPool2d(2, ceil_mode=True),  # 8 -> 4, 28 -> 14, 32 -> 16
        Fire(128, 32, 128),
        Fire(256, 32, 128),
    ]
    if h > 16:
        layers.append(nn.MaxPool2d(2, ceil_mode=True))  # 14 -> 7, 16 -> 8
    layers += [
        Fire(256, 48, 192),
        *_conv_bn(384, SQUEEZE_FEAT_DIM, kernel=1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    ]
    return nn.Sequential(*layers), SQUEEZE_FEAT_DIM


_BUILDERS: dict[str, Callable[[int, int, int], tuple[nn.Module, int]]] = {
    "cnn-s": lambda c, h, w: _cnn_s(c),
    "cnn-m": lambda c, h, w: _cnn_m(c),
    "cnn-l": lambda c, h, w: _cnn_l(c),
    "resnet": lambda c, h, w: _resnet(c, h),
    "mlp": _mlp,
    "vit": _vit,
    "dense": _dense,
    "mobile": lambda c, h, w: _mobile(c, h),
    "squeeze": lambda c, h, w: _squeeze(c, h),
}


def list_archs() -> list[str]:
    """Every name :func:`make_classifier` accepts: target, then evaluator, then surrogate archs."""
    return [*TARGET_ARCHS, *EVALUATOR_ARCHS, *SURROGATE_ARCHS]


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
            architecture's minimum (cnn-s/resnet/dense 4, cnn-m/mobile/squeeze 8, cnn-l 16,
            vit 2); for
            ``vit`` both multiples of its patch size (:func:`vit_patch_size`).
        num_classes: number of output logits (>= 2).

    Raises:
        ConfigError: unknown ``arch``, malformed or too small ``image_shape``, or
            ``num_classes`` < 2, or a ``vit`` image side that is not a multiple of its patch.

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
