"""Flax ResNets for 28-32 px images, picked by name from a registry.

Three families, in the style of flax ``examples/imagenet``:

* ``resnet{6n+2}`` (resnet8, resnet20, resnet32, resnet44, resnet56, resnet110):
  the CIFAR ResNets of He et al. (2016), section 4.2. A 3x3 stem conv with 16
  channels, then three stages of ``n`` basic blocks with 16, 32 and 64 channels
  (stride 2 at the start of stages 2 and 3), global average pooling and a dense
  layer. Shortcuts where the shape changes are option A of the paper by default
  (identity: stride-2 subsampling and zero-padded channels, no parameters; this
  is what gives ResNet-20 its 0.27M parameters); ``shortcut="projection"``
  selects option B (1x1 conv + BatchNorm).
* ``preact_resnet18``: the pre-activation ResNet-18 of He et al. (2016,
  "Identity Mappings in Deep Residual Networks"), as used for CIFAR in the
  label-noise literature: 3x3 stem, four stages of 64-512 channels.
* ``resnet18``, ``resnet34``, ``resnet50``: the ImageNet ResNets with a stem
  suited to 28-32 px inputs (one 3x3 conv with stride 1, no max-pool).

Every model takes NHWC float images and ``train: bool`` and returns float32
logits. ``dtype`` is the computation dtype of the convolutions and BatchNorm;
parameters, BatchNorm statistics, the global pooling and the final dense layer
stay float32. BatchNorm uses ``use_running_average=not train`` and
keeps its running statistics in the ``'batch_stats'`` collection. Under
``jax.jit`` with the batch sharded over a device mesh, the batch mean is a
reduction over the whole global array, so XLA computes the cross-device
statistics itself: no ``axis_name`` is needed (nor wanted) here.

Example:
  >>> model = get("resnet20", num_classes=10)
  >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  >>> logits, updates = model.apply(
  ...     variables, images, train=True, mutable=["batch_stats"])
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Any
Dtype = Any

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# He et al. initialisation: the right scale for convolutions followed by ReLU.
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (post-activation).

    Attributes:
      filters: output channels.
      conv: convolution constructor (bias-free, dtype already bound).
      norm: BatchNorm constructor (train/eval mode already bound).
      strides: stride of the first convolution.
      shortcut: "identity" (option A: subsample and zero-pad channels) or
        "projection" (option B: 1x1 conv + BatchNorm), used when the shape
        changes.
    """

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1
    shortcut: str = "projection"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        residual = x
        y = self.conv(self.filters, (3, 3), self.strides)(x)
        y = nn.relu(self.norm()(y))
        y = self.conv(self.filters, (3, 3))(y)
        y = self.norm()(y)
        if residual.shape != y.shape:
            residual = _shortcut(
                residual,
                self.filters,
                self.strides,
                self.shortcut,
                self.conv,
                self.norm,
            )
        return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a projection shortcut.

    Attributes:
      filters: channels of the 3x3 convolution; the block outputs 4x as many.
      conv: convolution constructor.
      norm: BatchNorm constructor.
      strides: stride of the 3x3 convolution.
    """

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        residual = x
        y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
        y = nn.relu(self.norm()(self.conv(self.filters, (3, 3), self.strides)(y)))
        y = self.norm()(self.conv(self.filters * 4, (1, 1))(y))
        if residual.shape != y.shape:
            residual = _shortcut(
                residual,
                self.filters * 4,
                self.strides,
                "projection",
                self.conv,
                self.norm,
            )
        return nn.relu(residual + y)


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv twice, identity mapping kept clean.

    Attributes:
      filters: output channels.
      conv: convolution constructor.
      norm: BatchNorm constructor.
      strides: stride of the first convolution.
    """

    filters: int
    conv: ModuleDef
    norm: ModuleDef
    strides: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        preact = nn.relu(self.norm()(x))
        residual = x
        if x.shape[-1] != self.filters or self.strides != 1:
            # The projection reads the pre-activated input, as in the paper.
            residual = self.conv(self.filters, (1, 1), self.strides, name="conv_proj")(
                preact
            )
        y = self.conv(self.filters, (3, 3), self.strides)(preact)
        y = self.conv(self.filters, (3, 3))(nn.relu(self.norm()(y)))
        return residual + y


def _shortcut(
    x: jax.Array,
    filters: int,
    strides: int,
    kind: str,
    conv: ModuleDef,
    norm: ModuleDef,
) -> jax.Array:
    """Matches the residual to the block output shape (option A or B)."""
    if kind == "projection":
        x = conv(filters, (1, 1), strides, name="conv_proj")(x)
        return norm(name="norm_proj")(x)
    x = x[:, ::strides, ::strides, :]
    missing = filters - x.shape[-1]
    return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (missing // 2, missing - missing // 2)))


class ResNet(nn.Module):
    """A ResNet for small images: 3x3 stride-1 stem, no max-pool, stages, head.

    Attributes:
      stage_sizes: number of blocks per stage.
      stage_filters: channels of each stage (before ``width_multiplier``).
      block_cls: BasicBlock, BottleneckBlock or PreActBlock.
      num_classes: size of the logits.
      stem_filters: channels of the stem conv (before ``width_multiplier``).
      width_multiplier: scales every channel count.
      shortcut: shortcut kind for BasicBlock ("identity" = option A,
        "projection" = option B).
      dtype: computation dtype; parameters stay float32.
    """

    stage_sizes: Sequence[int]
    stage_filters: Sequence[int]
    block_cls: ModuleDef
    num_classes: int
    stem_filters: int
    width_multiplier: float = 1
    shortcut: str = "projection"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        """Maps NHWC images [B, H, W, C] to float32 logits [B, num_classes]."""
        conv = functools.partial(
            nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_CONV_INIT
        )
        norm = functools.partial(
            nn.BatchNorm,
            use_running_average=not train,
            momentum=_BN_MOMENTUM,
            epsilon=_BN_EPSILON,
            dtype=self.dtype,
        )
        preact = self.block_cls is PreActBlock
        x = x.astype(self.dtype)
        x = conv(self._width(self.stem_filters), (3, 3), name="stem_conv")(x)
        if not preact:
            x = nn.relu(norm(name="stem_norm")(x))
        for stage, (num_blocks, filters) in enumerate(
            zip(self.stage_sizes, self.stage_filters, strict=True)
        ):
            for block in range(num_blocks):
                block_kwargs = {}
                if self.block_cls is BasicBlock:
                    block_kwargs["shortcut"] = self.shortcut
                x = self.block_cls(
                    filters=self._width(filters),
                    conv=conv,
                    norm=norm,
                    strides=2 if stage > 0 and block == 0 else 1,
                    **block_kwargs,
                )(x)
        if preact:
            x = nn.relu(norm(name="final_norm")(x))
        # Pooling and the head run in float32 whatever the computation dtype: in
        # bfloat16 they would round the logits, hence the loss and the saved
        # probabilities, to 8 significant bits. They cost next to nothing.
        x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
        return nn.Dense(self.num_classes, dtype=jnp.float32, name="head")(x)

    def _width(self, filters: int) -> int:
        return max(1, round(filters * self.width_multiplier))


def _cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
    return functools.partial(
        ResNet,
        stage_sizes=((depth - 2) // 6,) * 3,
        stage_filters=(16, 32, 64),
        block_cls=BasicBlock,
        stem_filters=16,
        shortcut="identity",
    )


_IMAGENET_FILTERS = (64, 128, 256, 512)

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{depth}": _cifar_resnet(depth) for depth in (8, 20, 32, 44, 56, 110)},
    "preact_resnet18": functools.partial(
        ResNet,
        stage_sizes=(2, 2, 2, 2),
        stage_filters=_IMAGENET_FILTERS,
        block_cls=PreActBlock,
        stem_filters=64,
    ),
    "resnet18": functools.partial(
        ResNet,
        stage_sizes=(2, 2, 2, 2),
        stage_filters=_IMAGENET_FILTERS,
        block_cls=BasicBlock,
        stem_filters=64,
    ),
    "resnet34": functools.partial(
        ResNet,
        stage_sizes=(3, 4, 6, 3),
        stage_filters=_IMAGENET_FILTERS,
        block_cls=BasicBlock,
        stem_filters=64,
    ),
    "resnet50": functools.partial(
        ResNet,
        stage_sizes=(3, 4, 6, 3),
        stage_filters=_IMAGENET_FILTERS,
        block_cls=BottleneckBlock,
        stem_filters=64,
    ),
}


def names() -> tuple[str, ...]:
    """Returns the registered model names, sorted."""
    return tuple(sorted(_REGISTRY))


def get(
    name: str,
    *,
    num_classes: int,
    width_multiplier: float = 1,
    dtype: Dtype = jnp.float32,
) -> nn.Module:
    """Builds a registered model.

    Args:
      name: one of ``names()``.
      num_classes: number of logits.
      width_multiplier: scales every channel count (> 0).
      dtype: computation dtype (e.g. ``jnp.bfloat16``); params stay float32.

    Returns:
      An unbound ``nn.Module``; call ``init``/``apply`` with NHWC images and
      ``train=...``.

    Raises:
      ValueError: unknown name, or a non-positive ``num_classes`` or
        ``width_multiplier``.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(names())}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier}")
    return _REGISTRY[name](
        num_classes=num_classes, width_multiplier=width_multiplier, dtype=dtype
    )
