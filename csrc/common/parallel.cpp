// Implementation of the pool described in parallel.hpp.
//
// Lifetime: the pool is a function-local static created on first use; workers are detached
// daemon-style threads parked on a condition variable, so interpreter shutdown never waits on
// them. A Job lives on the caller's stack; the caller removes it from the queue (under the pool
// lock) and then waits until every helper that joined has left, so no worker can touch a dead
// Job.
#include "common/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace pysim {
namespace {

std::atomic<InterruptCheck> g_interrupt_check{nullptr};

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(5);

// Time this (calling) thread has spent running chunks since it last polled. It is carried
// across jobs, so a C++ call built from many short parallel_for calls, each shorter than the
// poll interval, still polls every few milliseconds; idle time between calls does not count,
// so a short call after a pause does not pay for a poll (a GIL round trip).
thread_local Clock::duration t_unpolled{0};

struct Job {
    const std::function<void(std::size_t, std::size_t)>* fn = nullptr;
    std::size_t n = 0, grain = 1, chunks = 0;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::size_t helpers_wanted = 0; // guarded by the pool mutex
    std::size_t helpers_active = 0; // guarded by done_mutex
    std::mutex done_mutex;
    std::condition_variable done_cv;
    std::mutex error_mutex;
    std::exception_ptr error;

    // Runs chunks until none is left or the job is stopped.
    void work(bool is_caller, bool& interrupted) {
        auto mark = Clock::now();
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t c = next.fetch_add(1, std::memory_order_relaxed);
            if (c >= chunks)
                break;
            try {
                (*fn)(c* grain, std::min(n, (c + 1) * grain));
            } catch (...) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (!error)
                    error = std::current_exception();
                stop.store(true, std::memory_order_relaxed);
            }
            if (is_caller) {
                const auto now = Clock::now();
                t_unpolled += now - mark;
                mark = now;
                const InterruptCheck check = g_interrupt_check.load(std::memory_order_relaxed);
                if (check && t_unpolled > kPollInterval) {
                    t_unpolled = Clock::duration::zero();
                    if (check()) {
                        interrupted = true;
                        stop.store(true, std::memory_order_relaxed);
                    }
                }
            }
        }
    }
};

class Pool {
  public:
    void run(Job& job, std::size_t helpers) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            while (workers_ < helpers && workers_ < kMaxWorkers) {
                std::thread(&Pool::worker_loop, this).detach();
                ++workers_;
            }
            job.helpers_wanted = helpers;
            queue_.push_back(&job);
        }
        cv_.notify_all();
        bool interrupted = false;
        job.work(true, interrupted);
        {
            // No new helper may join once the job has left the queue.
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = std::find(queue_.begin(), queue_.end(), &job);
            if (it != queue_.end())
                queue_.erase(it);
        }
        std::unique_lock<std::mutex> lock(job.done_mutex);
        job.done_cv.wait(lock, [&] { return job.helpers_active == 0; });
        lock.unlock();
        if (job.error)
            std::rethrow_exception(job.error);
        if (interrupted)
            throw Interrupted();
    }

  private:
    // Matches pysim._validation.MAX_THREADS (256 threads per call, the caller included): the
    // pool never keeps more OS threads than one call may ask for.
    static constexpr std::size_t kMaxWorkers = 255;

    void worker_loop() {
        for (;;) {
            Job* job = nullptr;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                cv_.wait(lock, [&] { return !queue_.empty(); });
                job = queue_.front();
                if (--job->helpers_wanted == 0)
                    queue_.pop_front();
                std::lock_guard<std::mutex> done_lock(job->done_mutex);
                ++job->helpers_active;
            }
            bool unused = false;
            job->work(false, unused);
            std::lock_guard<std::mutex> done_lock(job->done_mutex);
            if (--job->helpers_active == 0)
                job->done_cv.notify_all();
        }
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Job*> queue_;
    std::size_t workers_ = 0;
};

Pool& pool() {
    // Leaked on purpose: detached workers may still reference it while the process exits.
    static Pool* p = new Pool();
    return *p;
}

} // namespace

void set_interrupt_check(InterruptCheck check) noexcept {
    g_interrupt_check.store(check, std::memory_order_relaxed);
}

void throw_if_interrupted() {
    const InterruptCheck check = g_interrupt_check.load(std::memory_order_relaxed);
    if (check && check())
        throw Interrupted();
}

std::size_t balanced_grain(std::size_t n, std::size_t threads, std::size_t min_grain) noexcept {
    const std::size_t target_chunks = std::max<std::size_t>(1, threads) * 8;
    return std::max<std::size_t>(std::max<std::size_t>(1, min_grain),
                                 (n + target_chunks - 1) / target_chunks);
}

std::size_t balanced_grain(std::size_t n, std::size_t threads, std::size_t min_grain,
                           std::size_t max_grain) noexcept {
    return std::min(balanced_grain(n, threads, min_grain), std::max(min_grain, max_grain));
}

void parallel_for(std::size_t n, std::size_t threads, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
    if (n == 0)
        return;
    grain = std::max<std::size_t>(1, grain);
    Job job;
    job.fn = &fn;
    job.n = n;
    job.grain = grain;
    job.chunks = (n + grain - 1) / grain;
    const std::size_t workers = std::min(std::max<std::size_t>(1, threads), job.chunks);
    if (workers <= 1) {
        bool interrupted = false;
        job.work(true, interrupted);
        if (job.error)
            std::rethrow_exception(job.error);
        if (interrupted)
            throw Interrupted();
        return;
    }
    pool().run(job, workers - 1);
}

} // namespace pysim
