"""The on-disk (and pickle) container shared by every index.

Layout (all integers little-endian)::

    b"PYSIMIDX"                      magic, 8 bytes
    uint32 format_version            FORMAT_VERSION of the writer
    uint32 header_length             bytes of the JSON header that follows
    JSON header                      {"kind", "meta", "arrays": [{"name","dtype","shape"}...]}
    array payloads                   raw C-order bytes, one after another, in header order
    uint32 crc32                     of everything above
    b"PYSIMEND"                      end marker, 8 bytes

Why this shape: the JSON header is self-describing and versionable without a schema; every
size is checked against the file length *before* anything is allocated, so a corrupt or
hostile file can only produce a ValueError; the CRC catches bit flips in the payload; arrays
come back as zero-copy views of the bytes read. Files are written to a temporary name in the
same directory, flushed, fsynced and renamed, so a crash never leaves a half-written index.
"""

from __future__ import annotations

import json
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

MAGIC = b"PYSIMIDX"
END = b"PYSIMEND"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"<f4", "<f8", "<i8", "<i4", "<u8", "<u4", "<u2", "|u1", "|i1", "<f2"}
_MAX_HEADER = 1 << 20


def _chunks(kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Iterator[bytes]:
    entries = []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:  # (ascontiguousarray would turn a 0-d array into 1-d)
            arr = np.array(arr, order="C")
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        entries.append((name, arr.astype(dt, copy=False)))
    header = {
        "kind": kind,
        "meta": meta,
        "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape)} for n, a in entries],
    }
    raw = json.dumps(header, sort_keys=True).encode()
    yield MAGIC + struct.pack("<II", FORMAT_VERSION, len(raw)) + raw
    for _, arr in entries:
        if arr.nbytes:
            yield memoryview(arr).cast("B")


def dumps(kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise to bytes (used by pickling)."""
    parts = list(_chunks(kind, meta, arrays))
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    return b"".join(parts) + struct.pack("<I", crc) + END


def save(path: str | os.PathLike, kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: temporary file in the same folder, fsync, then rename over `path`."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            crc = 0
            for chunk in _chunks(kind, meta, arrays):
                crc = zlib.crc32(chunk, crc)
                f.write(chunk)
            f.write(struct.pack("<I", crc) + END)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def loads(buf: bytes | bytearray | memoryview, kind: str, source: str) -> tuple[dict, dict]:
    """Parse and verify; return (meta, arrays). Any defect raises ValueError naming `source`."""

    def bad(why: str) -> ValueError:
        return ValueError(f"{source}: not a valid pysim {kind} index ({why})")

    try:
        view = memoryview(buf).cast("B")
    except TypeError as exc:  # not a buffer, or a non-contiguous one
        raise bad(f"unreadable buffer: {exc}") from None
    total = len(view)
    if total < len(MAGIC) + 8 + 4 + len(END):
        raise bad("file too short")
    if bytes(view[:8]) != MAGIC:
        raise bad("bad magic; not a pysim file")
    version, header_len = struct.unpack_from("<II", view, 8)
    if version == 0 or version > FORMAT_VERSION:
        raise bad(f"format version {version}; this pysim reads versions 1..{FORMAT_VERSION}")
    if header_len > _MAX_HEADER or 16 + header_len + 12 > total:
        raise bad("header length out of range")
    if bytes(view[total - 8 :]) != END:
        raise bad("missing end marker (truncated?)")
    (crc_stored,) = struct.unpack_from("<I", view, total - 12)
    if zlib.crc32(view[: total - 12]) != crc_stored:
        raise bad("checksum mismatch (corrupted)")
    try:
        header = json.loads(bytes(view[16 : 16 + header_len]).decode())
        if not isinstance(header, dict) or header.get("kind") != kind:
            raise bad(f"holds a {header.get('kind') if isinstance(header, dict) else '?'!r} index")
        meta = header["meta"]
        specs = header["arrays"]
        if not isinstance(meta, dict) or not isinstance(specs, list):
            raise bad("malformed header")
        arrays: dict[str, np.ndarray] = {}
        offset = 16 + header_len
        end = total - 12
        for spec in specs:
            name, dt, shape = spec["name"], spec["dtype"], spec["shape"]
            if not isinstance(name, str) or name in arrays:
                raise bad(f"array name {name!r} is not a string or is repeated")
            if dt not in _ALLOWED_DTYPES or not isinstance(shape, list) or len(shape) > 32:
                raise bad(f"array {name!r} has an unsupported dtype or shape")
            # bool is an int in Python; a JSON `true` is never a valid dimension.
            if not all(type(s) is int and 0 <= s < 1 << 62 for s in shape):
                raise bad(f"array {name!r} has an invalid shape")
            dtype = np.dtype(dt)
            count = 1
            for s in shape:
                count *= s
            nbytes = count * dtype.itemsize
            if nbytes > end - offset:
                raise bad(f"array {name!r} runs past the end of the data")
            arrays[name] = np.frombuffer(view, dtype, count, offset).reshape(shape)
            offset += nbytes
        if offset != end:
            raise bad("trailing bytes after the arrays")
    except ValueError as exc:
        if str(exc).startswith(source):
            raise
        raise bad(f"malformed header: {exc}") from None
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        raise bad(f"malformed header: {exc!r}") from None
    except RecursionError:  # JSON nested thousands deep: hostile, never written by save()
        raise bad("malformed header: nested too deeply") from None
    return meta, arrays


def load(path: str | os.PathLike, kind: str) -> tuple[dict, dict]:
    """Read and verify a file written by `save`; ValueError naming the path if it is not one."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        info = os.fstat(f.fileno())
        # Read exactly the size stat reports: a FIFO or device (/dev/zero) could otherwise
        # feed an unbounded read; a file that grows meanwhile fails the checks below.
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path!r}: not a valid pysim {kind} index (not a regular file)")
        buf = f.read(info.st_size)
    return loads(buf, kind, repr(path))


def loads_pickle(buf: Any, kind: str) -> tuple[dict, dict]:
    """`loads` for pickled state: a defect raises ValueError("corrupt pysim pickle ...")."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise ValueError(f"corrupt pysim pickle: expected bytes, got {type(buf).__name__}")
    try:
        return loads(buf, kind, "pickle")
    except ValueError as exc:
        raise ValueError(f"corrupt pysim pickle: {exc}") from None
