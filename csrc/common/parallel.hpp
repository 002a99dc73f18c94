// A small persistent thread pool with one entry point, parallel_for.
//
// Why our own: OpenMP runtimes (libgomp, libomp, Intel's) clash with the ones numpy, torch or
// faiss load into the same process, and oversubscribe when nested. This pool starts workers on
// first use, keeps them parked on a condition variable, and lets any number of callers (Python
// threads that released the GIL) run jobs at once: the caller always works on its own job, and
// idle workers join the oldest job that still wants help, so a job can never starve.
//
// Work is handed out in chunks through an atomic counter. The first exception thrown by any
// chunk stops the hand-out, and is rethrown on the caller after every helper has left the job.
//
// Interrupts: the caller polls an optional process-wide check (installed by the bindings; it
// asks Python whether SIGINT arrived) between its chunks, once per few milliseconds of work
// (counted across consecutive jobs of the same thread, so many short jobs still poll). When
// it fires, no new chunk starts and parallel_for throws pysim::Interrupted once helpers are done.
// Chunks therefore must be short (well under a second) for Ctrl-C to feel immediate.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>

namespace pysim {

/// Thrown by parallel_for when the interrupt check fired. Chunks already started completed.
struct Interrupted : std::exception {
    const char* what() const noexcept override { return "interrupted"; }
};

/// Returns true when the running call should stop (e.g. Ctrl-C). Must be thread-safe.
using InterruptCheck = bool (*)();

/// Installs the process-wide interrupt check (nullptr removes it).
void set_interrupt_check(InterruptCheck check) noexcept;

/// Calls the interrupt check now (rate-limited by the caller). Throws Interrupted if it fired.
void throw_if_interrupted();

/// Runs fn(begin, end) over [0, n) in chunks of `grain` items using at most `threads` threads
/// (the caller counts as one). Serial, in order, when threads <= 1 or there is one chunk.
/// Rethrows the first exception of any chunk; throws Interrupted when the interrupt check
/// fired. Call with the GIL released.
void parallel_for(std::size_t n, std::size_t threads, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn);

/// A grain that gives each thread several chunks (for balance) but chunks of at least
/// `min_grain` items (for overhead).
std::size_t balanced_grain(std::size_t n, std::size_t threads, std::size_t min_grain) noexcept;

/// As above, but never more than `max_grain` items per chunk (raised to `min_grain` if below),
/// so that one chunk, and with it the Ctrl-C latency, stays short however large n is.
std::size_t balanced_grain(std::size_t n, std::size_t threads, std::size_t min_grain,
                           std::size_t max_grain) noexcept;

} // namespace pysim
