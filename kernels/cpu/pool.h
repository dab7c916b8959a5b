// A persistent thread pool for the decode path's short parallel sections (matrix-vector products,
// attention over the cache, argmax): one token of Gemma 3 270M is ~150 of them, each a few to a few
// hundred microseconds long.
//
// Why not OpenMP there: libgomp's waiting threads spin (OMP_WAIT_POLICY unset: ~300k pause loops) between
// regions. On a machine whose cores are shared with other processes (the load average above the core
// count), a waiting thread then burns the timeslice its descheduled partner needs to finish: a profile of
// decode on 2 shared vCPUs (load ~5) had 80% of the time in libgomp's spin loop, decode at 2.5-9 tok/s
// against 26 with OMP_WAIT_POLICY=passive or one thread. Passive waiting in turn pays a futex wake and a
// vCPU wake-up per region on an idle machine. This pool waits the way ggml's does, spinning briefly, then
// yielding the core (sched_yield: returns at once when nothing else wants the core, hands it over when
// something does), and only after ~1 ms of nothing sleeping on a condition variable.
//
// The pool has omp_get_max_threads() threads, the caller being thread 0, so OMP_NUM_THREADS sizes both.
// Work is split by the caller's own function of (thread, threads); each output is still produced by one
// thread in a fixed order, so results do not depend on how many threads run. Called from inside an
// OpenMP region, from a pool thread, or while another host thread holds the pool, it runs the whole
// range on the calling thread (f(0, 1)).
#pragma once
#include <stdint.h>

#include <atomic>

namespace gk::cpu {

using PoolFn = void (*)(void* ctx, int thread, int threads);

// Runs fn(ctx, t, n) for t in [0, n) on n threads, n = min(max_threads, the pool's size), and returns
// when every call has returned. max_threads <= 1 (or a busy pool) runs fn(ctx, 0, 1) inline.
void pool_run(int max_threads, PoolFn fn, void* ctx);

// The pool's size (omp_get_max_threads() when it was first used).
int pool_size();

// Inside a pool_run job: every one of its `threads` threads calls this once with the same counter (zero before the
// job); each returns when all have arrived. Waits by spinning briefly, then yielding the core (two job threads may
// share one on a loaded machine).
void pool_barrier(std::atomic<int>& arrived, int threads);

// Lambda convenience: pool_for(n, [&](int t, int nt) { ... }).
template <typename F>
inline void pool_for(int max_threads, F&& f) {
  pool_run(
      max_threads, [](void* c, int t, int nt) { (*(F*)c)(t, nt); }, (void*)&f);
}

}  // namespace gk::cpu
