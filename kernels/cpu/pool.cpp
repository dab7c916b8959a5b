// The decode pool (pool.h): persistent workers that spin, then yield, then sleep.
#include "pool.h"

#include <omp.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GK_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define GK_CPU_RELAX() __asm__ __volatile__("yield")
#else
#define GK_CPU_RELAX() ((void)0)
#endif

namespace {

thread_local bool in_pool_worker = false;

// Pause loops before yielding: a few microseconds, about one hand-off on an idle machine.
constexpr int kSpins = 2000;
// Yielding this long before sleeping: decode's gaps between sections (norms, RoPE, the host between
// tokens) are far shorter, so a decoding pool never sleeps; an idle one stops using the core soon.
constexpr auto kYieldFor = std::chrono::microseconds(1000);

struct Pool {
  int size = 1;
  std::vector<std::thread> workers;
  std::mutex busy;  // held by the host thread that is using the pool

  // The current job, published by bumping `generation` (release) after the fields are written.
  gk::cpu::PoolFn fn = nullptr;
  void* ctx = nullptr;
  int threads = 1;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};  // workers still running the current job

  // Sleeping: workers wait on `wake` for a new generation, the caller on `done` for remaining == 0.
  std::mutex sleep_mu;
  std::condition_variable wake, done;
  std::atomic<int> sleepers{0};
  std::atomic<bool> caller_sleeping{false};
  bool stop = false;

  explicit Pool(int n) : size(n < 1 ? 1 : n) {
    for (int t = 1; t < size; ++t) workers.emplace_back([this, t] { work(t); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(sleep_mu);
      stop = true;
      generation.fetch_add(1, std::memory_order_seq_cst);
    }
    wake.notify_all();
    for (auto& w : workers) w.join();
  }

  // Waits until pred() holds: spin, yield, then sleep on cv (pred re-checked under sleep_mu).
  template <typename Pred>
  void wait(Pred pred, std::condition_variable& cv, std::atomic<int>* sleeping_count, std::atomic<bool>* sleeping_flag) {
    for (int i = 0; i < kSpins; ++i) {
      if (pred()) return;
      GK_CPU_RELAX();
    }
    const auto until = std::chrono::steady_clock::now() + kYieldFor;
    while (std::chrono::steady_clock::now() < until) {
      for (int i = 0; i < 16; ++i) {
        if (pred()) return;
        sched_yield();
      }
    }
    std::unique_lock<std::mutex> lock(sleep_mu);
    if (sleeping_count) sleeping_count->fetch_add(1);
    if (sleeping_flag) sleeping_flag->store(true);
    cv.wait(lock, [&] { return pred(); });
    if (sleeping_count) sleeping_count->fetch_sub(1);
    if (sleeping_flag) sleeping_flag->store(false);
  }

  void work(int t) {
    in_pool_worker = true;
    uint64_t seen = 0;
    for (;;) {
      wait([&] { return generation.load(std::memory_order_seq_cst) != seen; }, wake, &sleepers, nullptr);
      seen = generation.load(std::memory_order_seq_cst);
      if (stop) return;
      if (t < threads) {
        fn(ctx, t, threads);
        if (remaining.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping.load()) {
          std::lock_guard<std::mutex> lock(sleep_mu);  // orders the notify after the caller's wait began
          done.notify_one();
        }
      }
    }
  }

  void run(int n, gk::cpu::PoolFn f, void* c) {
    fn = f;
    ctx = c;
    threads = n;
    remaining.store(n - 1, std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load() > 0) {
      std::lock_guard<std::mutex> lock(sleep_mu);
      wake.notify_all();
    }
    f(c, 0, n);
    wait([&] { return remaining.load(std::memory_order_seq_cst) == 0; }, done, nullptr, &caller_sleeping);
  }
};

Pool& pool() {
  // Built on first use and never destroyed: its workers must not be joined from a static destructor
  // while the process is exiting (the library is dlopen'ed with nodelete).
  static Pool* p = new Pool(omp_get_max_threads());
  return *p;
}

}  // namespace

int gk::cpu::pool_size() { return pool().size; }

void gk::cpu::pool_barrier(std::atomic<int>& arrived, int threads) {
  arrived.fetch_add(1, std::memory_order_acq_rel);
  for (int i = 0; arrived.load(std::memory_order_acquire) < threads; ++i) {
    if (i < 256) GK_CPU_RELAX();
    else sched_yield();
  }
}

void gk::cpu::pool_run(int max_threads, PoolFn fn, void* ctx) {
  if (max_threads <= 1 || in_pool_worker || omp_in_parallel()) return fn(ctx, 0, 1);
  Pool& p = pool();
  const int n = max_threads < p.size ? max_threads : p.size;
  if (n <= 1) return fn(ctx, 0, 1);
  std::unique_lock<std::mutex> lock(p.busy, std::try_to_lock);
  if (!lock.owns_lock()) return fn(ctx, 0, 1);
  p.run(n, fn, ctx);
}
