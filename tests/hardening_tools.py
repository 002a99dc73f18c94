"""Reusable machinery for the hardening tests: corrupt-file fuzzing, interrupts, memory.

Each helper takes the thing under test as a callable, so the same code checks the container
of ``pysim._persist`` today and every index's ``load`` / unpickling once the indexes exist:

- ``corruptions(valid)``: a Hypothesis strategy of damaged copies of a valid file (truncated,
  bytes flipped anywhere but mostly in the header, wrong magic or version, absurd sizes,
  random bytes). Damage that keeps the checksum intact ("resealed") matters most: a CRC
  rejects blind flips before any field is parsed, so only resealed files reach the code that
  trusts header values (hnswlib's loader overflowed the heap on exactly that).
- ``check_file_rejected`` / ``check_blob_rejected``: the loader must raise ValueError (naming
  the path, or "corrupt pysim pickle"), never crash, and allocate no more than a small multiple
  of the input's size. Python-side allocations are measured with tracemalloc (numpy's buffers
  are traced too); native ones are bounded with RLIMIT_AS where that is meaningful (not under
  AddressSanitizer, which reserves terabytes of shadow address space).
- ``interrupt_latency``: sends a real SIGINT to the main thread while a call runs and returns
  the delay until KeyboardInterrupt surfaces.
- ``rss_bytes`` / ``rss_growth_in_child``: resident set size, and its growth over many calls
  measured in a fresh interpreter (leak tests).
- ``unpickler_for``: the real unpickling path of an index with a chosen (damaged) container.
- ``report``: figures (fuzz cases, latencies, RSS growth) printed in the terminal summary, so CI
  logs show the numbers the targets are about without ``-s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import strategies as st

from pysim import _persist

# --------------------------------------------------------------------------------------------
# Figures in the terminal summary


class _FigurePlugin:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.section("pysim hardening figures")
            for line in self.lines:
                terminalreporter.write_line(line)


def report(config: Any, line: str) -> None:
    """Print `line` now (captured output) and again in the end-of-run summary."""
    print(line)
    plugin = config.pluginmanager.get_plugin("pysim-hardening-figures")
    if plugin is None:
        plugin = _FigurePlugin()
        config.pluginmanager.register(plugin, "pysim-hardening-figures")
    plugin.lines.append(line)


# --------------------------------------------------------------------------------------------
# The container format, taken apart and put back together with a valid checksum

HEAD = len(_persist.MAGIC) + 8  # magic, version, header length
TAIL = 4 + len(_persist.END)  # crc32, end marker


def split_container(buf: bytes) -> tuple[dict, bytes]:
    """(header dict, payload bytes) of a valid container."""
    (header_len,) = struct.unpack_from("<I", buf, 12)
    header = json.loads(buf[HEAD : HEAD + header_len])
    return header, buf[HEAD + header_len : len(buf) - TAIL]


def seal(
    header_raw: bytes,
    payload: bytes,
    *,
    magic: bytes = _persist.MAGIC,
    version: int = _persist.FORMAT_VERSION,
    header_len: int | None = None,
) -> bytes:
    """A container whose checksum and end marker are right, whatever the fields say."""
    n = len(header_raw) if header_len is None else header_len
    body = magic + struct.pack("<II", version, n) + header_raw + payload
    return body + struct.pack("<I", zlib.crc32(body)) + _persist.END


def reseal_header(header: dict, payload: bytes) -> bytes:
    return seal(json.dumps(header, sort_keys=True).encode(), payload)


# Values that break assumptions: absurd sizes (2^62 points, 2^64 wraps), negatives, wrong types.
ABSURD_INTS = [
    -(2**63),
    -1,
    0,
    1,
    2**31 - 1,
    2**31,
    2**32,
    2**40,
    2**62 - 1,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    10**30,
]
ODD_VALUES = ABSURD_INTS + [
    None,
    True,
    1.5,
    float("inf"),
    float("nan"),
    "",
    "x" * 64,
    [],
    [1, 2],
    {},
    {"a": 1},
]


def _paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys / indices) to a value inside a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _replace(obj: Any, path: tuple, value: Any, mode: str) -> Any:
    """Copy of `obj` with the value at `path` replaced, deleted or duplicated."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, dict):
        out = dict(obj)
        if not rest and mode == "delete":
            out.pop(head, None)
        else:
            out[head] = _replace(obj[head], rest, value, mode)
        return out
    out = list(obj)
    if not rest and mode == "delete":
        del out[head]
    elif not rest and mode == "duplicate":
        out.insert(head, obj[head])
    else:
        out[head] = _replace(obj[head], rest, value, mode)
    return out


Case = tuple[str, bytes, bool]  # (description, damaged bytes, may it still be a valid file?)


def header_field_mutations(valid: bytes) -> st.SearchStrategy[Case]:
    """Resealed files whose JSON header has one field replaced, deleted or duplicated."""
    header, payload = split_container(valid)
    paths = list(_paths(header))

    def build(path: tuple, mode: str, value: Any) -> Case:
        if not path and mode != "replace":
            mode = "replace"
        mutated = _replace(header, path, value, mode)
        desc = f"header {mode} {list(path)} = {value!r}"[:200]
        return desc, reseal_header(mutated, payload), True

    values = st.one_of(
        st.sampled_from(ODD_VALUES),
        st.integers(),
        st.text(max_size=20),
        st.lists(st.integers(-3, 2**63), max_size=4),
    )
    return st.builds(
        build, st.sampled_from(paths), st.sampled_from(["replace", "delete", "duplicate"]), values
    )


def absurd_shape_mutations(valid: bytes) -> st.SearchStrategy[Case]:
    """Resealed files where an array claims absurd dimensions (up to 2^64 and beyond)."""
    header, payload = split_container(valid)
    specs = header.get("arrays", [])

    def build(i: int, dims: list[int]) -> Case:
        mutated = json.loads(json.dumps(header))
        mutated["arrays"][i]["shape"] = dims
        return f"array {specs[i]['name']!r} shape {dims}", reseal_header(mutated, payload), True

    dims = st.lists(st.sampled_from(ABSURD_INTS) | st.integers(0, 2**64), min_size=0, max_size=3)
    return st.builds(build, st.integers(0, max(0, len(specs) - 1)), dims) if specs else st.nothing()


def corruptions(valid: bytes) -> st.SearchStrategy[Case]:
    """Damaged copies of `valid`, each with a short description (shown when a case fails).

    Blind damage (truncation, flips, garbage) must be caught by the framing and checksum;
    resealed damage (fields rewritten with a recomputed checksum) must be caught by the field
    checks. Flip positions favour the first 64 bytes (magic, version, header length, the start
    of the JSON header) but cover the whole file.
    """
    size = len(valid)
    header, payload = split_container(valid)
    raw_header = json.dumps(header, sort_keys=True).encode()

    truncated = st.integers(0, size - 1).map(
        lambda n: (f"truncated to {n} bytes", valid[:n], False)
    )
    extended = st.binary(min_size=1, max_size=64).map(
        lambda extra: (f"{len(extra)} trailing bytes", valid + extra, False)
    )

    def flip(items: list[tuple[int, int]]) -> Case:
        data = bytearray(valid)
        for pos, xor in items:
            data[pos % size] ^= xor
        return f"flipped {items}", bytes(data), bytes(data) == valid  # flips may cancel out

    position = st.one_of(st.integers(0, min(size, 64) - 1), st.integers(0, size - 1))
    flips = st.lists(st.tuples(position, st.integers(1, 255)), min_size=1, max_size=8).map(flip)

    version = st.one_of(st.sampled_from([0, 2, 255, 2**31, 2**32 - 1]), st.integers(0, 2**32 - 1))
    wrong_version = version.filter(lambda v: v != _persist.FORMAT_VERSION).map(
        lambda v: (f"version {v}", seal(raw_header, payload, version=v), False)
    )
    header_len = st.one_of(
        st.sampled_from([0, 1, len(raw_header) - 1, len(raw_header) + 1, 2**20, 2**20 + 1]),
        st.integers(0, 2**32 - 1),
    )
    wrong_header_len = header_len.filter(lambda n: n != len(raw_header)).map(
        lambda n: (f"header length {n}", seal(raw_header, payload, header_len=n), False)
    )
    wrong_magic = (
        st.binary(min_size=8, max_size=8)
        .filter(lambda m: m != _persist.MAGIC)
        .map(lambda m: (f"magic {m!r}", seal(raw_header, payload, magic=m), False))
    )
    garbage_header = st.binary(max_size=96).map(
        lambda h: (f"header bytes {h[:32]!r}", seal(h, payload), False)
    )
    json_header = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda h: (f"header {h!r}"[:200], seal(json.dumps(h).encode(), payload), False))
    deep_header = st.integers(50, 200_000).map(
        lambda d: (f"header nested {d} deep", seal(b"[" * d + b"]" * d, payload), False)
    )
    flipped_payload = st.tuples(st.integers(0, max(0, len(payload) - 1)), st.integers(1, 255)).map(
        lambda f: (
            f"payload byte {f[0]} ^ {f[1]}, resealed",
            seal(raw_header, _xor_at(payload, f[0], f[1])),
            True,
        )
    )
    random_bytes = st.one_of(
        st.binary(max_size=4096), st.binary(max_size=256).map(lambda b: _persist.MAGIC + b)
    ).map(lambda b: (f"{len(b)} random bytes", b, False))
    return st.one_of(
        truncated,
        extended,
        flips,
        wrong_version,
        wrong_header_len,
        wrong_magic,
        garbage_header,
        json_header,
        deep_header,
        header_field_mutations(valid),
        absurd_shape_mutations(valid),
        flipped_payload,
        random_bytes,
    )


def _xor_at(data: bytes, pos: int, xor: int) -> bytes:
    out = bytearray(data)
    if out:
        out[pos] ^= xor
    return bytes(out)


def exhaustive_corruptions(valid: bytes) -> Iterator[tuple[str, bytes]]:
    """Deterministic sweep: every truncation length and every single-byte flip of the framing
    and header (three XOR patterns each), plus a flip of every 61st payload byte."""
    size = len(valid)
    header, _ = split_container(valid)
    header_end = HEAD + len(json.dumps(header, sort_keys=True).encode())
    for n in range(size):
        yield f"truncated to {n} bytes", valid[:n]
    positions = list(range(header_end)) + list(range(header_end, size - TAIL, 61))
    positions += list(range(size - TAIL, size))
    for pos in positions:
        for xor in (0x01, 0x80, 0xFF):
            yield f"byte {pos} ^ {xor:#x}", _xor_at(valid, pos, xor)


# --------------------------------------------------------------------------------------------
# Loading damaged input: ValueError, bounded allocation


@functools.cache
def asan_active() -> bool:
    """True when AddressSanitizer is loaded in this process (.ci/sanitize.sh)."""
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return bool(os.environ.get("PYSIM_SANITIZED"))


@contextlib.contextmanager
def address_space_cap(extra_bytes: int) -> Iterator[None]:
    """Limit native allocations to `extra_bytes` beyond what the process maps now.

    A loader that trusts a claimed size then gets MemoryError (std::bad_alloc) instead of
    silently reserving terabytes under overcommit, so the test sees the defect. No-op where
    RLIMIT_AS is unavailable or meaningless (ASan reserves terabytes of shadow memory).
    """
    try:
        import resource
    except ImportError:  # Windows
        yield
        return
    if asan_active() or not os.path.exists("/proc/self/status"):
        yield
        return
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class AllocationMeter:
    """Per-call allocation peaks under tracemalloc, plus the worst case seen; while it is
    active (``with``), native allocations are capped by ``address_space_cap(native_cap)``.

    Tracing is switched on only around the measured call, so the test machinery (Hypothesis'
    engine in particular) runs at full speed between cases.
    """

    def __init__(self, native_cap: int = 1 << 30) -> None:
        self.worst_ratio = 0.0  # peak / input size, over inputs of at least 4 KiB
        self.worst_bytes = 0  # largest peak seen, any input
        self._cap = address_space_cap(native_cap)

    def __enter__(self) -> AllocationMeter:
        self._cap.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cap.__exit__(*exc)

    def record(self, used: int, input_size: int) -> None:
        self.worst_bytes = max(self.worst_bytes, used)
        if input_size >= 4096:
            self.worst_ratio = max(self.worst_ratio, used / input_size)

    def summary(self) -> str:
        ratio = f"{self.worst_ratio:.1f}x input size" if self.worst_ratio else "n/a"
        return f"peak allocation {self.worst_bytes / 1024:.0f} KiB max, {ratio} on inputs >= 4 KiB"

    def measure(self, fn: Callable[[], Any]) -> tuple[int, Any]:
        nested = tracemalloc.is_tracing()
        if nested:
            tracemalloc.reset_peak()
        else:
            tracemalloc.start()
        before, _ = tracemalloc.get_traced_memory()
        try:
            result = fn()
        except BaseException as exc:  # noqa: BLE001 - returned for the caller to judge
            result = exc
        _, peak = tracemalloc.get_traced_memory()
        if not nested:
            tracemalloc.stop()
        return max(0, peak - before), result


def allocation_budget(input_size: int, factor: float = 16.0) -> int:
    """What a loader may allocate for an input of `input_size` bytes: a small multiple of it
    plus a fixed allowance for parsing (JSON objects, exception text)."""
    return int(factor * input_size) + (256 << 10)


def _check_rejected(
    call: Callable[[], Any],
    input_size: int,
    must_mention: str,
    meter: AllocationMeter,
    what: str,
    *,
    may_succeed: bool,
    factor: float,
    exercise: Callable[[Any], Any] | None,
) -> int:
    used, outcome = meter.measure(call)
    budget = allocation_budget(input_size, factor)
    assert used <= budget, f"{what}: allocated {used} bytes for a {input_size}-byte input"
    meter.record(used, input_size)
    if isinstance(outcome, ValueError):
        assert must_mention in str(outcome), (
            f"{what}: message {str(outcome)!r} lacks {must_mention!r}"
        )
        return 0
    if isinstance(outcome, BaseException):
        raise AssertionError(f"{what}: raised {type(outcome).__name__}: {outcome}") from outcome
    assert may_succeed, f"{what}: loaded without error"
    if exercise is not None:
        # A damaged file that still loads must give a usable object: using it may raise
        # ValueError at most, never crash or raise anything else.
        try:
            exercise(outcome)
        except ValueError:
            pass
        except Exception as exc:
            raise AssertionError(f"{what}: loaded, then {type(exc).__name__}: {exc}") from exc
    return 1


def check_file_rejected(
    load: Callable[[str], Any],
    data: bytes,
    path: str,
    meter: AllocationMeter,
    what: str,
    *,
    may_succeed: bool = False,
    factor: float = 16.0,
    exercise: Callable[[Any], Any] | None = None,
) -> int:
    """Write `data` to `path` and load it: ValueError naming the path, bounded allocation.

    `may_succeed` allows a damaged-but-consistent file (a resealed header whose new values are
    still valid) to load; `exercise(loaded)` (say, a query) then must not crash. Returns 1 if
    it loaded, 0 if it was rejected.
    """
    with open(path, "wb") as f:
        f.write(data)
    return _check_rejected(
        lambda: load(path),
        len(data),
        path,
        meter,
        what,
        may_succeed=may_succeed,
        factor=factor,
        exercise=exercise,
    )


# check_file_rejected's twin for pickles: the same keyword arguments, both forwarding to
# _check_rejected (duplicates pairs the signatures).
def check_blob_rejected(
    loads: Callable[[bytes], Any],
    blob: bytes,
    meter: AllocationMeter,
    what: str,
    *,
    may_succeed: bool = False,
    factor: float = 16.0,
    exercise: Callable[[Any], Any] | None = None,
) -> int:
    """Unpickle-style load of `blob`: ValueError("corrupt pysim pickle ..."), bounded allocation
    (arguments as for check_file_rejected)."""
    return _check_rejected(
        lambda: loads(blob),
        len(blob),
        "corrupt pysim pickle",
        meter,
        what,
        may_succeed=may_succeed,
        factor=factor,
        exercise=exercise,
    )


# --------------------------------------------------------------------------------------------
# Interrupts


class CallTooShort(AssertionError):
    """The call returned before the interrupt arrived; make the workload larger."""


def ticks_while(call: Callable[[], Any]) -> tuple[list[float], float]:
    """Run `call` while a Python thread ticks every millisecond; return the tick times that
    fell inside the call and the call's duration. With the GIL held for the whole call the
    thread cannot tick at all, so GIL-release tests assert on how many ticks got in."""
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=ticker)
    thread.start()
    start = time.perf_counter()
    try:
        call()
    finally:
        duration = time.perf_counter() - start
        stop.set()
        thread.join()
    return [t for t in ticks if start <= t <= start + duration], duration


def interrupt_latency(call: Callable[[], Any], delay: float) -> float:
    """Run `call()` on the main thread, send SIGINT after `delay` seconds, and return the seconds
    from the signal to the KeyboardInterrupt that `call` must raise.

    The signal is a real one (pthread_kill to the main thread), handled by Python's default
    SIGINT handler, exactly as Ctrl-C in a terminal. Raises CallTooShort if `call` returned
    before the signal was sent (the pending KeyboardInterrupt is absorbed here).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("interrupt_latency must run on the main thread")
    main = threading.main_thread().ident
    sent: list[float] = []

    def fire() -> None:
        sent.append(time.perf_counter())
        signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(delay, fire)
    caught = None
    start = time.perf_counter()
    try:
        timer.start()
        try:
            call()
        except KeyboardInterrupt:
            caught = time.perf_counter()
        returned = time.perf_counter()
        try:
            timer.join()
            time.sleep(0.05)  # lets a signal that arrived after the call be handled here
        except KeyboardInterrupt:
            pass
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    if caught is None:
        raise CallTooShort(f"call returned after {returned - start:.3f}s, before the signal")
    assert sent, "KeyboardInterrupt raised without a signal"
    return caught - sent[0]


def measure_interrupts(call: Callable[[], Any], delay: float, attempts: int = 3) -> float:
    """`interrupt_latency`, retried with a shorter delay if the call ran shorter than expected
    (a loaded machine can fire the timer late)."""
    for _ in range(attempts):
        try:
            return interrupt_latency(call, delay)
        except CallTooShort:
            delay /= 2
    return interrupt_latency(call, delay)


# --------------------------------------------------------------------------------------------
# Memory


def rss_bytes() -> int | None:
    """Current resident set size (Linux), or None where /proc is not available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


_RSS_CHILD = """
import json, os, sys

def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

exec(compile(sys.argv[1], "<setup>", "exec"))
_n, _warm = int(sys.argv[2]), int(sys.argv[3])
for _i in range(_warm):  # caches, the pool's threads, numpy's allocator
    calls[_i % len(calls)]()
_before = _rss()
for _i in range(_n):
    calls[_i % len(calls)]()
print(json.dumps({"before": _before, "after": _rss(), "calls": _n}))
"""


@dataclasses.dataclass
class RssGrowth:
    before: int
    after: int
    calls: int

    @property
    def growth(self) -> float:
        return (self.after - self.before) / self.before

    def describe(self) -> str:
        return (
            f"{self.calls} calls: {self.before / 2**20:.1f} MiB -> {self.after / 2**20:.1f} MiB "
            f"({self.growth * 100:+.2f}%, {(self.after - self.before) / self.calls:.1f} bytes/call)"
        )


def rss_growth_in_child(setup: str, calls: int, *, warm_up: int = 1000, cwd: Any) -> RssGrowth:
    """Resident-set growth over `calls` calls, measured in a fresh interpreter.

    `setup` is Python source that defines ``calls``, a list of zero-argument callables used in
    turn (for an index: add, query, remove...). A fresh process keeps the baseline small, so a
    5% bound is tight, and keeps other tests' memory out of the figure. `cwd` must not be the
    source tree (its pysim/ has no compiled module).
    """
    proc = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, setup, str(calls), str(warm_up)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        raise AssertionError(f"RSS child failed ({proc.returncode}):\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return RssGrowth(res["before"], res["after"], res["calls"])


def unpickler_for(obj: Any) -> Callable[[bytes], Any]:
    """A function that unpickles `obj`'s pickle with its embedded container replaced by a given
    blob, through the real pickle machinery (``obj.__reduce__`` must be PersistMixin's)."""
    fn, (cls, _) = obj.__reduce__()

    def unpickle(blob: bytes) -> Any:
        class Carrier:
            def __reduce__(self):
                return fn, (cls, blob)

        return pickle.loads(pickle.dumps(Carrier()))

    return unpickle
