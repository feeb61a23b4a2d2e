"""On-device image preprocessing: training augmentation and normalisation.

The host pipeline (`input_pipeline`) only gathers uint8 images and their labels
and example indices; the jitted train and eval steps turn them into the model's
float32 inputs with a `Preprocessing`, so the host only copies pixels and an
accelerator is not held back by one host thread.

Augmentation decisions are a pure function of (seed, epoch, example index):
example i of epoch e is cropped and flipped as drawn from the key
``fold_in(fold_in(augment_key, e), i)``, where ``augment_key`` is the config
seed's "augment" stream. They do not depend on the batch an example lands in,
on the device or process that holds its row, or on where a run was resumed
(for one JAX version: `jax.random`'s streams may change between releases).

Example:
  >>> pre = Preprocessing(mean=(0.5,), std=(0.25,), crop_padding=4, seed=0)
  >>> images = pre.train_images(uint8_images, indices, epoch)  # inside jit
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from tce_jax import seeding


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """What the steps do to a batch of uint8 images (a static, hashable value).

    Attributes:
      mean: per-channel mean on the [0, 1] scale.
      std: per-channel standard deviation on the [0, 1] scale.
      crop_padding: zero padding per side before a random crop back to the
        image size (0 = no crop).
      random_flip: whether training images are mirrored left-right with
        probability 1/2.
      seed: the run's config seed; augmentation uses its "augment" stream.
      platform: the platform of the devices the steps run on ("cpu", "gpu",
        "tpu"); it picks how `normalise` computes.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0
    random_flip: bool = False
    seed: int = 0
    platform: str = "cpu"

    @property
    def augments(self) -> bool:
        return self.crop_padding > 0 or self.random_flip

    def eval_images(self, images: jax.Array) -> jax.Array:
        """uint8 [B, H, W, C] -> normalised float32, as the model sees them."""
        return normalise(images, mean=self.mean, std=self.std, platform=self.platform)

    def train_images(
        self, images: jax.Array, indices: jax.Array, epoch: jax.Array
    ) -> jax.Array:
        """Augments uint8 images of examples ``indices`` in ``epoch``, then normalises.

        Args:
          images: uint8 [B, H, W, C].
          indices: int32 [B], the examples' indices (see `input_pipeline`).
          epoch: int32 scalar, 0-based.

        Returns:
          float32 [B, H, W, C].
        """
        if self.augments:
            offsets, flips = self.decisions(indices, epoch)
            images = crop_and_flip(
                images, offsets, flips, crop_padding=self.crop_padding
            )
        return self.eval_images(images)

    def decisions(
        self, indices: jax.Array, epoch: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Crop offsets int32 [B, 2] (top, left) and flips bool [B] of the examples."""
        epoch_key = jax.random.fold_in(seeding.purpose_key(self.seed, "augment"), epoch)

        def decide(index):
            crop_key, flip_key = jax.random.split(jax.random.fold_in(epoch_key, index))
            offsets = jax.random.randint(crop_key, (2,), 0, 2 * self.crop_padding + 1)
            flip = jax.random.bernoulli(flip_key) & self.random_flip
            return offsets, flip

        return jax.vmap(decide)(indices)


def normalise(
    images: jax.Array,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    platform: str = "cpu",
) -> jax.Array:
    """``float32(images) * scale + offset`` per channel, ``scale = 1 / (255 std)``.

    ``scale`` and ``offset = -mean / std`` are float32. On CPU the result is
    bit-exact with numpy's multiply then add, each rounded, which is the
    arithmetic the committed results were computed with: XLA would contract
    the two into one fused multiply-add (one rounding, which changed the last
    bit of a quarter to a half of the 256 values per channel), so numpy
    computes the 256 results per channel once and the device looks them up.
    Elsewhere (``platform`` "gpu" or "tpu") a gather per pixel is slow and no
    committed result depends on the last bit: XLA computes the multiply-add.

    Args:
      images: uint8 [..., C].
      mean, std: per-channel, on the [0, 1] scale.
      platform: the platform the computation runs on.

    Returns:
      float32, the shape of ``images``.
    """
    if platform != "cpu":
        scale, offset = _scale_and_offset(mean, std)
        return images.astype(jnp.float32) * scale + offset
    table = normalisation_table(mean, std)
    entries = images.astype(jnp.int32) * len(mean) + jnp.arange(len(mean))
    # The output is sharded like the images; explicit-axes meshes (jax.make_mesh's
    # default) need that stated for a gather.
    return (
        jnp.asarray(table.ravel())
        .at[entries]
        .get(mode="promise_in_bounds", out_sharding=jax.typeof(images).sharding)
    )


def _scale_and_offset(
    mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """float32 [C] each: normalised = pixel * scale + offset."""
    scale = (1.0 / (255.0 * np.asarray(std))).astype(np.float32)
    offset = (-np.asarray(mean) / np.asarray(std)).astype(np.float32)
    return scale, offset


def normalisation_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """float32 [256, C]: the normalised value of each uint8 level in each channel."""
    scale, offset = _scale_and_offset(mean, std)
    return np.arange(256, dtype=np.float32)[:, None] * scale + offset


def normalise_on_host(
    images: np.ndarray, *, mean: tuple[float, ...], std: tuple[float, ...]
) -> np.ndarray:
    """`normalise` in NumPy, for host-side uses: its CPU values, bit for bit."""
    return normalisation_table(mean, std)[images, np.arange(len(mean))]


def crop_and_flip(
    images: jax.Array, offsets: jax.Array, flips: jax.Array, *, crop_padding: int
) -> jax.Array:
    """Crops each zero-padded image at its offsets, then mirrors the flipped ones.

    Args:
      images: [B, H, W, C].
      offsets: int [B, 2], (top, left) in the padded image, in
        [0, 2 * crop_padding].
      flips: bool [B].
      crop_padding: zero padding per side.

    Returns:
      [B, H, W, C], the dtype of ``images``.
    """
    _, height, width, channels = images.shape
    pad = crop_padding
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))

    def one(image, offset, flip):
        crop = jax.lax.dynamic_slice(
            image, (offset[0], offset[1], 0), (height, width, channels)
        )
        return jnp.where(flip, crop[:, ::-1], crop)

    return jax.vmap(one)(padded, offsets, flips)
