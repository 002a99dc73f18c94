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
same directory, flushed, fsynced and renamed, so a crash never leaves a half-written index;
the temporary name is one per destination (``.<name>.pysim-tmp``), locked while written, so
the leftover of a killed save is found and removed by the next save to that destination,
instead of accumulating under random names.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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


def _file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "a file of unknown type"


def _tmp_name(target: str) -> str:
    """The one temporary name of a destination (hidden, in the destination's folder): a save
    killed half-way leaves at most this file, and the next save to the same destination
    removes it. Long names are hashed to stay within the file system's name limit."""
    folder, base = os.path.split(target)
    if len(base.encode(errors="surrogateescape")) > 200:
        base = hashlib.sha256(base.encode(errors="surrogateescape")).hexdigest()[:32]
    return os.path.join(folder, f".{base}.pysim-tmp")


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


#: flock() errors that mean "this file system has no advisory locks", not a real failure.
_NO_LOCKS = {
    getattr(errno, n) for n in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "EINVAL") if hasattr(errno, n)
}


def _open_tmp(target: str) -> tuple[int, str]:
    """Create the temporary file of `target` afresh, locked; return (descriptor, name).

    Every writer locks the temporary file it writes and renames it before unlocking, so a
    temporary file that can be locked while it still has its name was left by a save that
    died (SIGKILL, power loss): it is removed and created again. Two saves to one destination
    therefore take turns (the last one to finish wins, whole), and the new file gets the
    mode open() would give it (0o666 less the umask), whoever created the leftover.
    Without advisory locks (Windows, or a file system that refuses them) each save uses a
    fresh random name instead, as before.
    """
    folder, base = os.path.split(target)
    if fcntl is None:  # pragma: no cover - Windows
        return tempfile.mkstemp(prefix=f".{base}.", suffix=".pysim-tmp", dir=folder)
    tmp = _tmp_name(target)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    while True:
        fresh = True
        try:
            fd = os.open(tmp, flags | os.O_EXCL, 0o666)
        except FileExistsError:
            fresh = False
            try:
                fd = os.open(tmp, (flags & ~os.O_CREAT) | getattr(os, "O_NOFOLLOW", 0))
            except FileNotFoundError:  # its writer just renamed or removed it: try again
                continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:  # e.g. an NFS mount without lockd
                if exc.errno not in _NO_LOCKS:
                    raise
                if fresh:
                    os.unlink(tmp)
                os.close(fd)
                return tempfile.mkstemp(prefix=f".{base}.", suffix=".pysim-tmp", dir=folder)
            if _same_file(fd, tmp):
                if fresh:
                    return fd, tmp
                mode = os.fstat(fd).st_mode
                if not stat.S_ISREG(mode):
                    raise ValueError(
                        f"{tmp!r}: the temporary file of a save is {_file_kind(mode)}; remove it"
                    )
                os.unlink(tmp)  # a dead save's leftover (we hold its lock)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def save(path: str | os.PathLike, kind: str, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically: temporary file next to the destination, fsync, rename over it.

    The destination must be a regular file or a new name: a directory, FIFO, socket or device
    is refused with a ValueError naming `path`. A symbolic link is followed: the file it
    points to is replaced (atomically, in that file's folder) and the link stays. An existing
    destination keeps its permission bits; a new one gets open()'s (0o666 less the umask).
    """
    given = os.fspath(path)
    if isinstance(given, bytes):
        given = os.fsdecode(given)

    def refuse(mode: int) -> ValueError:
        via = "" if os.path.abspath(given) == target else f" (through a link to {target!r})"
        return ValueError(
            f"{given!r}: cannot save an index over {_file_kind(mode)}{via}; "
            "give a regular file or a new file name"
        )

    if given.endswith(os.sep) or (os.altsep and given.endswith(os.altsep)):
        raise ValueError(f"{given!r}: cannot save an index over a directory; give a file name")
    target = os.path.realpath(given)  # symbolic links followed, every level
    try:
        before = os.stat(target)
    except FileNotFoundError:
        before = None
    if before is not None and not stat.S_ISREG(before.st_mode):
        raise refuse(before.st_mode)
    fd, tmp = _open_tmp(target)
    try:
        with os.fdopen(os.dup(fd), "wb") as f:  # a duplicate: `fd` keeps the lock open
            crc = 0
            for chunk in _chunks(kind, meta, arrays):
                crc = zlib.crc32(chunk, crc)
                f.write(chunk)
            f.write(struct.pack("<I", crc) + END)
            f.flush()
            try:  # checked again now that concurrent saves to this destination are excluded
                current = os.stat(target)
            except FileNotFoundError:
                current = None
            if current is not None:
                if not stat.S_ISREG(current.st_mode):
                    raise refuse(current.st_mode)
                os.chmod(fd if os.chmod in os.supports_fd else tmp, stat.S_IMODE(current.st_mode))
            os.fsync(fd)
        os.replace(tmp, target)
        _sync_folder(os.path.dirname(target))
    except BaseException:
        try:
            if _same_file(fd, tmp):
                os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)  # releases the lock, after the rename


def _sync_folder(folder: str) -> None:
    """fsync a folder so that a rename in it survives a power loss (best effort)."""
    try:
        dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


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
            # Arrays are packed back to back, so one may start off its dtype's alignment;
            # the kernels read aligned elements, so such an array is copied.
            arr = np.frombuffer(view, dtype, count, offset).reshape(shape)
            arrays[name] = arr if arr.flags.aligned else arr.copy()
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
    """Read and verify a file written by `save`; ValueError naming the path if it is not one.

    The path is stat-ed before it is opened, and opened non-blocking: a directory, FIFO,
    socket or device is a ValueError at once (a FIFO without a writer would otherwise block
    the open forever, and a device like /dev/zero feed an unbounded read).
    """
    path = os.fspath(path)

    def refuse(mode: int) -> ValueError:
        what = _file_kind(mode)
        return ValueError(f"{path!r}: not a valid pysim {kind} index (not a regular file: {what})")

    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise refuse(info.st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())  # what was opened (the path may have changed meanwhile)
        if not stat.S_ISREG(info.st_mode):
            raise refuse(info.st_mode)
        # Exactly the size stat reports: a file that grows meanwhile fails the checks below.
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
