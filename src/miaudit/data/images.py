"""Image data sets stored as JPEG bytes in an ``.npz`` archive (CIFAR-10, JPEG quality 75).

The archive holds ``jpeg`` (uint8: every image's JPEG file, concatenated), ``offsets``
(int64, N + 1: image ``i`` is ``jpeg[offsets[i]:offsets[i+1]]``), ``y`` (integer labels),
and optionally ``is_test`` (bool, N) and ``classes`` (N_classes names). Only the images that
are kept are decoded, so a 2,000-image subset loads in well under a second.

Record fingerprint (version 1, see :mod:`miaudit.data.fingerprint`)
    ``sha256(b"miaudit-record-v1\\x00jpeg\\x00" + uint64_le(len(L)) + L + J)`` as 64 lowercase
    hex digits, where ``L`` is the UTF-8 text of the record's original label (its class name,
    ``classes[y]``, or ``str(y)`` when the archive has no ``classes``) and ``J`` the raw bytes
    of its JPEG file as stored. The digest does not depend on the JPEG decoder, on the
    normalisation, nor on which other records were loaded.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from miaudit.data._encoding import stratified_positions
from miaudit.data._npz import open_npz, read_arrays
from miaudit.data.dataset import Dataset, build_dataset
from miaudit.data.fingerprint import RECORD_PREFIX
from miaudit.errors import DataError, DependencyError

__all__ = ["CIFAR10_NAME", "JPEG_RECORD_PREFIX", "SPLITS", "load_cifar10_npz"]

CIFAR10_NAME = "CIFAR-10 (JPEG-q75)"
"""Name of the data set loaded by :func:`load_cifar10_npz` (lossy re-encoding: say so)."""

JPEG_RECORD_PREFIX = RECORD_PREFIX + b"jpeg\x00"
"""Prefix of the hashed text of a JPEG record (``b"miaudit-record-v1\\x00jpeg\\x00"``)."""

SPLITS = ("all", "train", "test")
"""Values of ``split``: every image, or those with ``is_test`` False / True."""

CHANNEL_NAMES = ("R", "G", "B")

#: Class codes of an archive without ``classes`` must be below this (each code up to the
#: largest one becomes a class name).
MAX_CLASS_CODE = 100_000


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DependencyError("Loading JPEG images needs Pillow: pip install 'miaudit[images]' "
                              "(or pip install pillow).") from None
    return Image


def _read(path: Path) -> dict[str, np.ndarray]:
    with open_npz(path) as archive:
        files = list(archive.files)
        absent = [k for k in ("jpeg", "offsets", "y") if k not in files]
        if absent:
            raise DataError(f"{path.name} lacks array(s) {', '.join(map(repr, absent))}; a JPEG "
                            f"image archive needs 'jpeg', 'offsets' and 'y' (it has "
                            f"{', '.join(map(repr, files)) or 'no arrays'}).")
        return read_arrays(archive, path, [k for k in ("jpeg", "offsets", "y", "is_test",
                                                       "classes") if k in files])


def _check(arrays: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Validate the arrays once; return the integer labels and the class names."""
    jpeg, offsets, y = arrays["jpeg"], arrays["offsets"], arrays["y"]
    if jpeg.ndim != 1 or jpeg.dtype != np.uint8:
        raise DataError(f"'jpeg' in {name} must be a 1-D uint8 array of concatenated JPEG "
                        f"files, got dtype {jpeg.dtype} with shape {jpeg.shape}.")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise DataError(f"'y' in {name} must be a 1-D integer array of class codes, got dtype "
                        f"{y.dtype} with shape {y.shape}.")
    n = len(y)
    if offsets.shape != (n + 1,) or offsets.dtype.kind not in "iu":
        raise DataError(f"'offsets' in {name} must be {n + 1} integers (one more than the "
                        f"{n} labels), got dtype {offsets.dtype} with shape {offsets.shape}.")
    offsets = offsets.astype(np.int64)  # uint64 beyond int64 turns negative: refused below
    if n and (offsets[0] < 0 or offsets[-1] > len(jpeg) or (np.diff(offsets) <= 0).any()):
        raise DataError(f"'offsets' in {name} must increase strictly from >= 0 to at most "
                        f"len(jpeg) = {len(jpeg)}; got {int(offsets[0])}..{int(offsets[-1])}.")
    if "is_test" in arrays and arrays["is_test"].shape != (n,):
        raise DataError(f"'is_test' in {name} has shape {arrays['is_test'].shape}; expected "
                        f"({n},), one flag per image.")
    codes = y.astype(np.int64)
    if n and "classes" not in arrays and codes.max() >= MAX_CLASS_CODE:
        raise DataError(f"'y' in {name} holds the class code {int(codes.max())}; codes must "
                        f"lie in 0..{MAX_CLASS_CODE - 1} (give 'classes' to name them).")
    if "classes" in arrays:
        classes = tuple(str(c).strip() for c in arrays["classes"].reshape(-1).tolist())
    else:
        classes = tuple(str(c) for c in range(int(codes.max()) + 1 if n else 0))
    if n and (codes.min() < 0 or codes.max() >= len(classes)):
        raise DataError(f"'y' in {name} must hold class codes 0..{len(classes) - 1} (one per "
                        f"name in 'classes'), got {int(codes.min())}..{int(codes.max())}.")
    return codes, classes


def _decode(Image, jpeg: np.ndarray, offsets: np.ndarray, keep: np.ndarray, name: str
            ) -> np.ndarray:
    """Decode the kept images as RGB: uint8 ``(n, H, W, 3)``."""
    out: np.ndarray | None = None
    for j, i in enumerate(keep.tolist()):
        data = jpeg[offsets[i] : offsets[i + 1]].tobytes()
        try:
            with Image.open(io.BytesIO(data)) as img:
                pixels = np.asarray(img.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            reason = " ".join(str(exc).split()).rstrip(".")
            raise DataError(f"Image {i} in {name} is not a readable JPEG file: {reason}."
                            ) from exc
        if out is None:
            out = np.empty((len(keep), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != out.shape[1:]:
            raise DataError(f"Images in {name} differ in size: image {int(keep[0])} is "
                            f"{out.shape[2]}x{out.shape[1]}, image {i} is "
                            f"{pixels.shape[1]}x{pixels.shape[0]} (width x height).")
        out[j] = pixels
    assert out is not None
    return out


def _standardise(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Channel-first float32 images ``(n, 3, H, W)`` from RGB ``(n, H, W, 3)`` uint8 pixels.

    Each value is ``(p / 255 - mean_c) / std_c`` with the per-channel mean and population
    standard deviation of ``p / 255`` over all images, computed exactly (float64) from the
    256-bin histogram of each channel, applied through a 256-entry lookup table.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    hist = np.stack([np.bincount(pixels[..., c].ravel(), minlength=256) for c in range(3)])
    count = hist.sum(axis=1)
    mean = hist @ levels / count
    std = np.sqrt(np.maximum(hist @ levels**2 / count - mean**2, 0.0))
    std[std == 0] = 1.0
    table = ((levels[None, :] - mean[:, None]) / std[:, None]).astype(np.float32)
    images = np.empty((pixels.shape[0], 3, *pixels.shape[1:3]), dtype=np.float32)
    for c in range(3):
        images[:, c] = table[c][pixels[..., c]]
    return images, mean, std


def _fingerprints(jpeg: np.ndarray, offsets: np.ndarray, keep: np.ndarray, codes: np.ndarray,
                  classes: tuple[str, ...]) -> np.ndarray:
    base = hashlib.sha256(JPEG_RECORD_PREFIX)
    heads = []
    for label in classes:
        head = base.copy()
        text = label.encode("utf-8")
        head.update(len(text).to_bytes(8, "little") + text)
        heads.append(head)
    view = memoryview(jpeg)
    out = []
    for i in keep.tolist():
        h = heads[codes[i]].copy()
        h.update(view[offsets[i] : offsets[i + 1]])
        out.append(h.hexdigest())
    return np.array(out, dtype="<U64")


def load_cifar10_npz(
    path: str | os.PathLike[str],
    *,
    n_records: int | None = None,
    seed: int = 0,
    split: str = "all",
) -> Dataset:
    """Load JPEG images from an ``.npz`` archive (CIFAR-10 JPEG-q75 format) as a Dataset.

    Parameters
    ----------
    path : str or path-like
        The archive: ``jpeg``, ``offsets`` and ``y``, optionally ``is_test`` and ``classes``
        (see the module docstring).
    n_records : int, optional
        Keep a random class-stratified subset of this many images (drawn from ``split``):
        each class in proportion to its share, chosen with ``seed``. Default: every image of
        ``split``. Only the kept images are decoded.
    seed : int, default 0
        Seed of the subset (ignored when ``n_records`` is None).
    split : {"all", "train", "test"}, default "all"
        Every image, or only those whose ``is_test`` flag is False / True.

    Returns
    -------
    dataset : Dataset
        Records in file order. ``X`` float32 ``(N, 3*H*W)``: each image's RGB pixels in
        channel-first order ``(channel, row, column)`` flattened, scaled to [0, 1], then
        standardised per channel with the mean and (population) standard deviation of the
        loaded images (kept in ``info["channel_mean"]`` / ``info["channel_std"]``). ``ids``:
        each image's 0-based position in the archive, as text. ``fingerprints``: SHA-256
        of the raw JPEG bytes and the label (see the module docstring). ``info`` has
        ``image_shape`` ``[3, H, W]``, ``format`` ``"cifar10-jpeg-npz"``, ``split`` and
        ``subset`` (the requested size and seed).

    Raises
    ------
    DependencyError
        Pillow is not installed (``pip install 'miaudit[images]'``).
    DataError
        Missing or malformed arrays, an unreadable image, images of different sizes, a
        ``split`` without ``is_test``, or ``n_records`` out of range.

    Examples
    --------
    >>> import io, tempfile, numpy as np
    >>> from PIL import Image
    >>> files = []
    >>> for v in range(8):
    ...     buf = io.BytesIO()
    ...     Image.new("RGB", (32, 32), (30 * v, 0, 0)).save(buf, format="JPEG")
    ...     files.append(buf.getvalue())
    >>> offsets = np.cumsum([0] + [len(f) for f in files])
    >>> jpeg = np.frombuffer(b"".join(files), dtype=np.uint8)
    >>> path = tempfile.mkdtemp() + "/tiny.npz"
    >>> np.savez(path, jpeg=jpeg, offsets=offsets, y=np.arange(8) % 2)
    >>> ds = load_cifar10_npz(path, n_records=4)
    >>> ds.X.shape, ds.info["image_shape"], np.bincount(ds.y).tolist()
    ((4, 3072), [3, 32, 32], [2, 2])
    """
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}.")
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Data file not found: {path}; check the path.")
    Image = _pillow()
    arrays = _read(path)
    codes, classes = _check(arrays, path.name)
    jpeg, offsets = arrays["jpeg"], arrays["offsets"].astype(np.int64)
    if split != "all" and "is_test" not in arrays:
        raise DataError(f"split={split!r} needs a boolean 'is_test' array in {path.name}; it "
                        f"has none. Use split='all'.")
    if split == "all":
        pool = np.arange(len(codes))
    else:
        pool = np.flatnonzero(arrays["is_test"].astype(bool) == (split == "test"))
    if n_records is None:
        keep = pool
    else:
        if isinstance(n_records, bool) or not isinstance(n_records, (int, np.integer)) \
                or not 1 <= n_records <= len(pool):
            raise DataError(f"n_records must be an integer from 1 to {len(pool)} (the images "
                            f"of split {split!r} in {path.name}), got {n_records!r}.")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DataError(f"seed must be an integer >= 0, got {seed!r}.")
        keep = pool[stratified_positions(codes[pool], int(n_records), int(seed))]
    if len(keep) == 0:
        raise DataError(f"{path.name} has no images in split {split!r}.")
    pixels = _decode(Image, jpeg, offsets, keep, path.name)  # (n, H, W, 3)
    images, mean, std = _standardise(pixels)
    _, height, width = images.shape[1:]
    feature_names = [f"{c}_{r}_{col}" for c in CHANNEL_NAMES for r in range(height)
                     for col in range(width)]
    info: dict[str, Any] = {
        "source": str(path.resolve()),
        "format": "cifar10-jpeg-npz",
        "ids": "0-based position of the image in the archive",
        "image_shape": [3, int(height), int(width)],
        "split": split,
        "subset": {"n_records": None if n_records is None else int(n_records),
                   "seed": None if n_records is None else int(seed),
                   "n_available": len(pool), "stratified_by": "class"},
        "n_missing_values": 0,
        "missing_per_column": {},
        "categorical_columns": [],
        "standardised": True,
        "encoding": ("RGB pixels / 255, standardised per channel with the loaded images' "
                     "mean and population std; flattened channel-first (channel, row, "
                     "column); features named channel_row_column"),
        "channel_mean": [float(v) for v in mean],
        "channel_std": [float(v) for v in std],
    }
    return build_dataset(name=CIFAR10_NAME, X=images.reshape(len(keep), -1), y=codes[keep],
                         ids=keep.astype(str),
                         fingerprints=_fingerprints(jpeg, offsets, keep, codes, classes),
                         classes=classes, feature_names=feature_names, info=info,
                         id_source="the archive positions")
