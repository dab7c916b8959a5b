// Decode programs on the CPU: between gk_program_begin and gk_program_end, every op called on the stream
// appends a call to the stream's list (GK_CPU_RECORD, cpu.h) instead of running; gk_program_run replays
// the list. The CPU stream is synchronous, so nothing recorded runs at record time.
//
// A recorded call re-invokes the op's entry point with the arguments it was recorded with, on the stream
// gk_program_run is given (any CPU stream that is not itself recording). Replays re-validate (cheap) and
// read the per-step values — token ids, positions, the decode state — from memory when they run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "../common/error.h"
#include "cpu.h"

struct gk_program {
  std::vector<gk_cpu_call> calls;
  char error[1024] = "";  // the last run's failure, readable from any thread
};

GK_API gk_status gk_program_begin(gk_stream* s) {
  GK_TRY(gk::validate_stream(s, "gk_program_begin"));
  GK_REQUIRE(!s->recording, "gk_program_begin: the stream is already recording a program");
  s->recorded.clear();
  s->recording = true;
  return GK_OK;
}

GK_API gk_status gk_program_end(gk_stream* s, gk_program** out_program) {
  GK_TRY(gk::validate_stream(s, "gk_program_end"));
  GK_REQUIRE(s->recording, "gk_program_end: the stream is not recording a program (gk_program_begin first)");
  // Recording stops whatever happens below, so the stream is usable again.
  s->recording = false;
  std::vector<gk_cpu_call> calls = std::move(s->recorded);
  s->recorded.clear();
  GK_REQUIRE(out_program, "gk_program_end: NULL out_program (the recording was discarded)");
  gk_program* p = new (std::nothrow) gk_program();
  if (!p) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_program_end: out of host memory");
  p->calls = std::move(calls);
  *out_program = p;
  return GK_OK;
}

// GEMMAKIT_PROFILE=1: every gk_program_run times each recorded call and prints, on stderr, the time per
// entry point (summed over its calls and the run's steps), largest first. Read once; when unset the replay
// loop is the plain one.
static bool profiling() {
  static const bool on = [] {
    const char* v = getenv("GEMMAKIT_PROFILE");
    return v && *v && strcmp(v, "0") != 0;
  }();
  return on;
}

static void print_profile(const gk_program* program, const std::vector<double>& ns, int32_t steps) {
  std::map<std::string, std::pair<double, int>> by_op;  // entry point -> (ns, calls per step)
  double total = 0;
  for (size_t i = 0; i < ns.size(); ++i) {
    const char* name = program->calls[i].name;
    const std::string op(name, strcspn(name, "("));
    by_op[op].first += ns[i];
    by_op[op].second += 1;
    total += ns[i];
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, v] : by_op) rows.emplace_back(v.first, op);
  std::sort(rows.rbegin(), rows.rend());
  fprintf(stderr, "gemmakit profile: %d steps of %zu calls, %.3f ms per step\n", steps, ns.size(),
          total / 1e6 / steps);
  for (const auto& [t, op] : rows) {
    fprintf(stderr, "  %-24s %4d calls/step %8.3f ms/step %5.1f%%\n", op.c_str(), by_op[op].second,
            t / 1e6 / steps, 100.0 * t / total);
  }
  std::vector<std::pair<double, size_t>> calls;  // the costliest single calls (the lm_head among the linears)
  for (size_t i = 0; i < ns.size(); ++i) calls.emplace_back(ns[i], i);
  std::sort(calls.rbegin(), calls.rend());
  for (size_t j = 0; j < std::min<size_t>(3, calls.size()); ++j) {
    const char* name = program->calls[calls[j].second].name;
    fprintf(stderr, "  call %zu (%.*s): %.3f ms/step\n", calls[j].second, (int)strcspn(name, "("), name,
            calls[j].first / 1e6 / steps);
  }
}

static gk_status run_steps(gk_program* program, gk_stream* s, int32_t steps) {
  GK_TRY(gk::validate_program_run(program, s, steps));
  GK_REQUIRE(!s->recording, "gk_program_run: the stream is recording a program; end the recording first");
  if (profiling()) {
    using clock = std::chrono::steady_clock;
    std::vector<double> ns(program->calls.size(), 0.0);
    for (int32_t step = 0; step < steps; ++step) {
      for (size_t i = 0; i < program->calls.size(); ++i) {
        const auto t0 = clock::now();
        const gk_status st = program->calls[i].fn(s);
        ns[i] += std::chrono::duration<double, std::nano>(clock::now() - t0).count();
        if (st != GK_OK) return gk_fail(st, "gk_program_run: recorded op %zu failed", i);
      }
    }
    if (steps > 0) print_profile(program, ns, steps);
    return GK_OK;
  }
  for (int32_t step = 0; step < steps; ++step) {
    for (size_t i = 0; i < program->calls.size(); ++i) {
      const gk_status st = program->calls[i].fn(s);
      if (st != GK_OK) {
        const std::string why = gk_last_error();  // copied: gk_fail rewrites the same buffer
        return gk_fail(st, "gk_program_run: step %d of %d, recorded op %zu: %s", step, steps, i, why.c_str());
      }
    }
  }
  return GK_OK;
}

GK_API gk_status gk_program_destroy(gk_program* program) {
  GK_REQUIRE(program, "gk_program_destroy: NULL program");
  delete program;
  return GK_OK;
}

// Deno may run gk_program_run on a worker thread (a nonblocking FFI call), where the thread-local last
// error cannot be read afterwards; the program keeps its own copy of the last failure.
GK_API gk_status gk_program_run(gk_program* program, gk_stream* s, int32_t steps) {
  const gk_status st = run_steps(program, s, steps);
  if (program) snprintf(program->error, sizeof program->error, "%s", st == GK_OK ? "" : gk_last_error());
  return st;
}

GK_API const char* gk_program_last_error(gk_program* program) { return program ? program->error : ""; }
