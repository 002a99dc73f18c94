"""Files of a sharded index: a local (or shared) directory, or any fsspec URL.

Why so small: local paths go through pysim's own container writer (temporary file, fsync,
rename: atomic, checksummed); an fsspec URL gets the same container as bytes, written to a
temporary name and moved over the final one, so a reader never sees half a file either way.
fsspec is imported only when a URL is used.
"""

from __future__ import annotations

import os
import uuid
from typing import Any


def is_url(path: str) -> bool:
    """True for ``proto://...`` paths (handled by fsspec), False for local paths."""
    return "://" in path and not path.startswith("file://")


def _fs(path: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the extra
        raise ValueError(
            f"{path!r} is a URL; reading and writing URLs needs fsspec (pip install fsspec)"
        ) from None
    return fsspec.core.url_to_fs(path)


def local(path: str) -> str:
    """A ``file://`` URL as a plain path; other paths unchanged."""
    return path[len("file://") :] if path.startswith("file://") else path


def join(folder: str, name: str) -> str:
    """``folder/name`` for a path or a URL."""
    return folder.rstrip("/") + "/" + name if is_url(folder) else os.path.join(local(folder), name)


def makedirs(folder: str) -> None:
    """Create the folder (and parents) if missing."""
    if is_url(folder):
        fs, p = _fs(folder)
        fs.makedirs(p, exist_ok=True)
    else:
        os.makedirs(local(folder), exist_ok=True)


def exists(path: str) -> bool:
    """Whether the file exists."""
    if is_url(path):
        fs, p = _fs(path)
        return fs.exists(p)
    return os.path.isfile(local(path))


def write_bytes(path: str, blob: bytes) -> None:
    """Write `blob` atomically (temporary name in the same folder, then rename/move)."""
    if is_url(path):
        fs, p = _fs(path)
        tmp = f"{p}.{uuid.uuid4().hex}.tmp"
        with fs.open(tmp, "wb") as f:
            f.write(blob)
        fs.mv(tmp, p)
        return
    path = local(path)
    tmp = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_bytes(path: str) -> bytes:
    """The whole file; ValueError naming it when it is missing or unreadable."""
    try:
        if is_url(path):
            fs, p = _fs(path)
            with fs.open(p, "rb") as f:
                return f.read()
        with open(local(path), "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise ValueError(f"{path!r}: file of the sharded index is missing") from None
    except OSError as exc:
        raise ValueError(f"{path!r}: cannot read the file ({exc})") from None
