"""The load-time transform of an image encoder: the contract's signal transform, then the image it declares.

A record's signal is resampled, filtered and cropped exactly as for a signal encoder
(:meth:`EncoderContract.signal_transform`), then drawn as a paper ECG or encoded as GAF/RP/MTF
(:mod:`meit.render`), augmented when training (seeded by record and epoch, so a resumed run draws the same
images), denoised if the contract says so (grid removal, background flattening), resized to the contract's
size and normalised per channel. With a rendered cache (``meit render``
output) the clean paper image is read from disk instead of drawn. Evaluation never augments.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from meit.data.image_spec import PAPER_MODES, image_channels
from meit.data.transforms import EcgTransform
from meit.errors import DataError

if TYPE_CHECKING:
    from meit.data.contract import EncoderContract


def sample_seed(record_id: str, epoch: int) -> int:
    """The augmentation seed of one record in one epoch: stable across processes, runs and resumes."""
    digest = hashlib.blake2b(f"{record_id}\x00{int(epoch)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 → ``size`` = (height, width), antialiased (PIL's bilinear filter widens when shrinking)."""
    from PIL import Image

    height, width = size
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


@dataclass
class ImageTransform:
    """Signal ``(leads, T)`` mV → image ``(channels, height, width)`` float32, as ``contract`` declares.

    ``augment``: apply the contract's training augmentations (``image_augment``), seeded per record and epoch.
    ``cache``: a :class:`~meit.data.rendered_cache.RenderedCache` to read clean paper images from (by record id;
    a call without ``record_id`` or with ``use_cache=False`` — a perturbed or single signal — is drawn from ``x``).
    """

    contract: EncoderContract
    signal: EcgTransform
    augment: bool = False
    cache: Any = None

    def __post_init__(self) -> None:
        if not self.contract.is_image:
            raise DataError("ImageTransform needs an image contract (image_mode is none)")
        if self.cache is not None:
            self.cache.check_contract(self.contract, self.signal.fs_in)

    @property
    def fs_in(self) -> int:
        return self.signal.fs_in

    @property
    def augments(self) -> bool:
        """Whether calls draw augmentations (training with a non-empty ``image_augment``)."""
        return self.augment and bool(self.contract.image_augment)

    def __call__(self, x: np.ndarray, fs: int | None = None, rng: np.random.Generator | None = None, *,
                 record_id: str | None = None, epoch: int = 0, use_cache: bool = True) -> np.ndarray:
        c = self.contract
        if c.image_mode in PAPER_MODES:
            image = self._paper(x, fs, rng, record_id, epoch, use_cache)
            pixels = image.astype(np.float32).transpose(2, 0, 1) / 255.0
        else:
            pixels = self._encoding(x, fs, rng, record_id if use_cache else None)
        mean = np.asarray(c.image_mean, dtype=np.float32)[:, None, None]
        std = np.asarray(c.image_std, dtype=np.float32)[:, None, None]
        out = ((pixels - mean) / std).astype(np.float32, copy=False)
        if out.shape != c.input_shape:
            raise DataError(f"rendered image has shape {out.shape}; the contract says {c.input_shape}")
        return out

    def _paper(self, x: np.ndarray, fs: int | None, rng: np.random.Generator | None, record_id: str | None,
               epoch: int, use_cache: bool) -> np.ndarray:
        from meit.render import Augmentation, augment, render_paper

        c = self.contract
        cached = (self.cache.image(record_id) if self.cache is not None and record_id is not None and use_cache
                  else None)
        if cached is not None:
            image = cached
        else:
            signal = self.signal(x, fs, rng)
            image = render_paper(signal.astype(np.float64), c.fs, layout=c.image_mode.removeprefix("paper-"),
                                 dpi=c.image_dpi, seconds=c.seconds).image
        if self.augments:
            if record_id is None:
                raise DataError("training augmentation is seeded per record: call the transform with record_id")
            image = augment(image, Augmentation(**c.augmentation), sample_seed(record_id, epoch))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise DataError(f"paper image must be (height, width, 3) uint8, got {image.shape} {image.dtype}")
        if c.image_denoise != "none":
            from meit.render import denoise_paper

            image = denoise_paper(image, c.image_denoise)
        assert c.image_size is not None
        return resize_image(image, c.image_size)

    def _encoding(self, x: np.ndarray, fs: int | None, rng: np.random.Generator | None,
                  record_id: str | None) -> np.ndarray:
        from meit.render import signal_image

        c = self.contract
        assert c.image_size is not None
        if self.cache is not None and record_id is not None:
            image = np.asarray(self.cache.image(record_id), dtype=np.float32)
        else:
            image = np.asarray(signal_image(self.signal(x, fs, rng), c.fs, mode=c.image_mode, size=c.image_size[0],
                                            seconds=c.seconds), dtype=np.float32)
        channels = image_channels(c.image_mode)
        if image.shape[0] != channels:
            raise DataError(f"{c.image_mode} encoding has {image.shape[0]} channels; expected {channels}")
        return image


def apply_transform(transform: Any, signal: np.ndarray, record_id: str, epoch: int, *, from_cache: bool = True
                    ) -> np.ndarray:
    """Run a dataset's transform on one record: image transforms also get the record id (augmentation seed,
    cache key) and epoch; ``from_cache=False`` (a perturbed signal) draws the image from ``signal``."""
    if isinstance(transform, ImageTransform):
        return transform(signal, record_id=record_id, epoch=epoch, use_cache=from_cache)
    return transform(signal)
