"""Read ``.npz`` archives without trusting them: never unpickle, refuse damaged members,
and never allocate what an array header claims before checking that the archive holds it.

Shared by the data loaders (:mod:`miaudit.data.loaders`, :mod:`miaudit.data.images`) and
the precomputed-outputs loader (:func:`miaudit.targets.load_outputs`).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from miaudit.errors import DataError

__all__ = ["open_npz", "read_arrays"]

#: What reading a damaged archive raises; zipfile raises NotImplementedError for a zip
#: version or compression method it does not support.
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                NotImplementedError)
#: Deflate expands data at most about 1032-fold; a member claiming more is damaged.
_MAX_INFLATION = 1100
_ENCRYPTED = 0x1
#: The first bytes of a zip archive (np.load reads anything else as .npy or a pickle).
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def open_npz(path: Path, hint: str = "") -> np.lib.npyio.NpzFile:
    """Open an ``.npz`` archive (use it as a context manager), refusing pickles, single
    ``.npy`` files, unreadable zips and encrypted or implausibly sized members.

    ``hint`` (a sentence) ends the error messages about the file as a whole.
    """
    suffix = f" {hint}" if hint else ""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
        if head.startswith(b"\x93NUMPY"):  # not loaded: its header may claim any size
            raise DataError(f"{path} holds a single .npy array, not an .npz archive.{suffix}")
        if not head.startswith(_ZIP_MAGIC):
            raise DataError(f"Cannot read {path} as an .npz archive: it is not a zip "
                            f"file.{suffix}")
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as exc:
        raise DataError(f"Cannot read {path} as an .npz archive: {_reason(exc)}.{suffix}"
                        ) from exc
    size = path.stat().st_size
    for info in archive.zip.infolist():
        problem = None
        if info.flag_bits & _ENCRYPTED:
            problem = "is encrypted"
        elif info.compress_size > size or info.file_size > _MAX_INFLATION * max(
                info.compress_size, 1):
            problem = (f"claims {info.file_size} bytes from {info.compress_size} stored "
                       f"bytes in a {size}-byte file")
        if problem:
            archive.close()
            raise DataError(f"Member {info.filename!r} of {path.name} {problem}: the archive "
                            f"is damaged or not written by numpy.savez.")
    return archive


def _member(archive: np.lib.npyio.NpzFile, key: str) -> zipfile.ZipInfo:
    names = archive.zip.namelist()
    return archive.zip.getinfo(f"{key}.npy" if f"{key}.npy" in names else key)


def _check_header(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> None:
    """Refuse an array of Python objects, or one whose header claims more data than its
    member holds, before numpy allocates it."""
    info = _member(archive, key)
    with archive.zip.open(info) as f:
        if f.read(6) != b"\x93NUMPY":
            return  # numpy returns such a member as raw bytes, bounded by its size
        f.seek(0)
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(f)
    if dtype.hasobject:
        raise DataError(f"Array {key!r} in {path.name} holds Python objects, which miaudit "
                        f"never unpickles; save it as a numeric or fixed-width string array "
                        f"(e.g. arr.astype(str)).")
    claimed = math.prod(int(d) for d in shape) * dtype.itemsize
    if claimed > info.file_size:
        raise DataError(f"Array {key!r} in {path.name} claims shape {tuple(shape)} of "
                        f"{dtype} ({claimed} bytes) but its member holds {info.file_size} "
                        f"bytes: the archive is damaged.")


def read_arrays(archive: np.lib.npyio.NpzFile, path: Path,
                keys: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (each in ``archive.files``) of an archive from :func:`open_npz`.

    Raises
    ------
    DataError
        An array of Python objects, a header that claims more data than stored, or a
        damaged member (naming the array).
    """
    arrays = {}
    for key in keys:
        try:
            _check_header(archive, key, path)
            arrays[key] = np.asarray(archive[key])
        except _READ_ERRORS as exc:
            raise DataError(f"Cannot read array {key!r} of {path.name}: {_reason(exc)}; the "
                            f"archive is damaged.") from exc
    return arrays
