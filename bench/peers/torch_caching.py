#!/usr/bin/env python3
"""PyTorch's CUDA caching allocator through gpumem-bench's workloads.

    python3 bench/peers/torch_caching.py --bench build/bench/gpumem-bench \\
        --csv torch.csv [gpumem-bench workload options ...]

Runs gpumem-bench --export-plans with the options given after the known ones
(so both sides replay exactly the same plans: same sizes, seeds, streams),
then replays every plan from C++ through
c10::cuda::CUDACachingAllocator::raw_alloc_with_stream / raw_delete (built
with PyTorch's C++ extension loader), with gpumem-bench's method: a warm-up
run, timed repetitions each ending with a synchronize of the plan's streams,
median/min/max in ns per operation (per pair for `pairs`). Each mode runs in
a fresh process, since PYTORCH_CUDA_ALLOC_CONF is read when CUDA starts:

    torch-caching      the default configuration
    torch-expandable   expandable_segments:True

The CSV has gpumem-bench's columns, so bench/plot.py draws both together:

    python3 bench/plot.py results.csv torch.csv -o comparison.png

The `first` workload is not replayed (PyTorch has no fresh allocator to
create; empty_cache() is not the same). Without PyTorch or without a CUDA
device the script says so and exits with status 2.
"""
import argparse
import csv
import datetime
import os
import subprocess
import sys
import tempfile

COLUMNS = ["backend", "device", "date", "allocator", "workload", "params", "threads", "ops", "reps",
           "median_ns", "min_ns", "max_ns", "ops_per_s", "scaling", "peak_live_bytes",
           "peak_reserved_bytes", "driver_calls", "status"]

MODES = {"torch-caching": "", "torch-expandable": "expandable_segments:True"}

CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace {
struct Plan {
  std::vector<int8_t> kind;     // 0 alloc, 1 free
  std::vector<int32_t> slot;
  std::vector<int64_t> size;
  std::vector<int16_t> stream;
  int32_t slots = 0;
  int16_t streams = 1;
};

double now_ns() {
  return std::chrono::duration<double, std::nano>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Replay once on the given streams; returns the elapsed ns including a
// synchronize of every stream.
double replay_once(const Plan& p, const std::vector<c10::cuda::CUDAStream>& streams, bool touch) {
  std::vector<void*> ptrs(p.slots, nullptr);
  double t0 = now_ns();
  for (size_t i = 0; i < p.kind.size(); i++) {
    cudaStream_t s = streams[p.stream[i]].stream();
    if (p.kind[i] == 0) {
      ptrs[p.slot[i]] = c10::cuda::CUDACachingAllocator::raw_alloc_with_stream(p.size[i], s);
      if (touch) {
        size_t n = p.size[i] < (1 << 20) ? p.size[i] : (1 << 20);
        TORCH_CHECK(cudaMemsetAsync(ptrs[p.slot[i]], 0, n, s) == cudaSuccess, "memset failed");
      }
    } else {
      c10::cuda::CUDACachingAllocator::raw_delete(ptrs[p.slot[i]]);
      ptrs[p.slot[i]] = nullptr;
    }
  }
  for (auto& s : streams) TORCH_CHECK(cudaStreamSynchronize(s.stream()) == cudaSuccess, "sync failed");
  return now_ns() - t0;
}

Plan make_plan(const std::vector<int64_t>& kind, const std::vector<int64_t>& slot,
               const std::vector<int64_t>& size, const std::vector<int64_t>& stream) {
  Plan p;
  for (size_t i = 0; i < kind.size(); i++) {
    p.kind.push_back((int8_t)kind[i]);
    p.slot.push_back((int32_t)slot[i]);
    p.size.push_back(size[i]);
    p.stream.push_back((int16_t)stream[i]);
    if (slot[i] + 1 > p.slots) p.slots = (int32_t)slot[i] + 1;
    if (stream[i] + 1 > p.streams) p.streams = (int16_t)stream[i] + 1;
  }
  return p;
}
}  // namespace

// Timed repetitions (after `warmup` untimed ones) of one plan; ns per rep.
std::vector<double> replay(std::vector<int64_t> kind, std::vector<int64_t> slot,
                           std::vector<int64_t> size, std::vector<int64_t> stream,
                           int64_t warmup, int64_t reps, bool touch) {
  Plan p = make_plan(kind, slot, size, stream);
  std::vector<c10::cuda::CUDAStream> streams;
  for (int i = 0; i < p.streams; i++) streams.push_back(c10::cuda::getStreamFromPool());
  std::vector<double> out;
  for (int64_t r = 0; r < warmup + reps; r++) {
    double t = replay_once(p, streams, touch);
    if (r >= warmup) out.push_back(t);
  }
  return out;
}

// T threads, each replaying its own plan on its own stream, started together;
// ns from the first thread's start to the last one's end, per rep.
std::vector<double> replay_threads(std::vector<std::vector<int64_t>> kinds,
                                   std::vector<std::vector<int64_t>> slots,
                                   std::vector<std::vector<int64_t>> sizes,
                                   std::vector<std::vector<int64_t>> streams_,
                                   int64_t warmup, int64_t reps) {
  size_t nt = kinds.size();
  std::vector<Plan> plans;
  for (size_t t = 0; t < nt; t++) plans.push_back(make_plan(kinds[t], slots[t], sizes[t], streams_[t]));
  std::vector<double> out;
  for (int64_t r = 0; r < warmup + reps; r++) {
    std::vector<double> start(nt), end(nt);
    std::mutex m;
    std::condition_variable cv;
    size_t ready = 0;
    bool go = false;
    std::vector<std::thread> threads;
    for (size_t t = 0; t < nt; t++) {
      threads.emplace_back([&, t] {
        std::vector<c10::cuda::CUDAStream> own{c10::cuda::getStreamFromPool()};
        {
          std::unique_lock<std::mutex> lock(m);
          ready++;
          cv.notify_all();
          cv.wait(lock, [&] { return go; });
        }
        start[t] = now_ns();
        replay_once(plans[t], own, false);
        end[t] = now_ns();
      });
    }
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait(lock, [&] { return ready == nt; });
      go = true;
      cv.notify_all();
    }
    for (auto& th : threads) th.join();
    double t0 = start[0], t1 = end[0];
    for (size_t t = 1; t < nt; t++) {
      t0 = std::min(t0, start[t]);
      t1 = std::max(t1, end[t]);
    }
    if (r >= warmup) out.push_back(t1 - t0);
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("replay", &replay);
  m.def("replay_threads", &replay_threads);
}
"""


def read_plan(path):
    kind, slot, size, stream = [], [], [], []
    with open(path) as f:
        next(f)
        for line in f:
            op, i, s, st = line.strip().split(",")
            kind.append(0 if op == "a" else 1)
            slot.append(int(i))
            size.append(int(s))
            stream.append(int(st))
    return kind, slot, size, stream


def live_peak(plan):
    live = peak = 0
    for k, s in zip(plan[0], plan[2]):
        live += s if k == 0 else -s
        peak = max(peak, live)
    return peak


def summary(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return median, s[0], s[-1]


def run_mode(mode, plans_dir, warmup, reps, out_csv):
    """Runs in a fresh process with PYTORCH_CUDA_ALLOC_CONF set for `mode`."""
    import torch
    from torch.utils.cpp_extension import load_inline

    ext = load_inline(name="gpumem_torch_peer", cpp_sources=[CPP], functions=None,
                      with_cuda=True, extra_ldflags=["-lcudart"], verbose=False)
    device = torch.cuda.get_device_name(0)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows, one_thread = [], None
    with open(os.path.join(plans_dir, "plans.tsv")) as f:
        index = list(csv.DictReader(f, delimiter="\t"))
    for entry in index:
        files = [os.path.join(plans_dir, x) for x in entry["files"].split(",")]
        plans = [read_plan(p) for p in files]
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        status = "ok"
        try:
            if entry["workload"] == "threads":
                samples = ext.replay_threads([p[0] for p in plans], [p[1] for p in plans],
                                             [p[2] for p in plans], [p[3] for p in plans], warmup, reps)
            else:
                samples = ext.replay(*plans[0], warmup, reps, entry["touch"] == "1")
        except RuntimeError as e:  # out of memory and friends: a row, not a crash
            samples, status = [], str(e).splitlines()[0]
        per = int(entry["per"])
        median, lo, hi = summary([s / per for s in samples]) if samples else (0.0, 0.0, 0.0)
        ops_per_s = 1e9 / median if median else 0.0
        threads = int(entry["threads"])
        scaling = 0.0
        if entry["workload"] == "threads":
            if threads == 1:
                one_thread = ops_per_s
            scaling = ops_per_s / one_thread if one_thread else 0.0
        stats = torch.cuda.memory_stats()
        rows.append({"backend": "cuda", "device": device, "date": date, "allocator": mode,
                     "workload": entry["workload"], "params": entry["params"], "threads": threads,
                     "ops": per, "reps": len(samples), "median_ns": f"{median:.1f}",
                     "min_ns": f"{lo:.1f}", "max_ns": f"{hi:.1f}", "ops_per_s": f"{ops_per_s:.1f}",
                     "scaling": f"{scaling:.3f}", "peak_live_bytes": sum(live_peak(p) for p in plans),
                     "peak_reserved_bytes": stats.get("reserved_bytes.all.peak", 0), "driver_calls": "",
                     "status": status})
        print(f"{mode:17s} {entry['workload']:8s} {entry['params']:32.32s} {median:12.0f} ns/op", flush=True)
    with open(out_csv, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default="build/bench/gpumem-bench", help="the gpumem-bench program")
    ap.add_argument("--csv", default="torch.csv", help="CSV to write")
    ap.add_argument("--modes", default="torch-caching,torch-expandable")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--run-mode", help=argparse.SUPPRESS)
    ap.add_argument("--plans", help=argparse.SUPPRESS)
    args, bench_args = ap.parse_known_args()

    if args.run_mode:
        return run_mode(args.run_mode, args.plans, args.warmup, args.reps, args.csv)

    try:
        import torch
    except ImportError as e:
        print(f"torch_caching.py: PyTorch is not installed here ({e}); no PyTorch figures. "
              "Install it (pip install torch) on a machine with a GPU.", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_caching.py: PyTorch sees no CUDA device here; no PyTorch figures.", file=sys.stderr)
        return 2
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            print(f"torch_caching.py: unknown mode '{m}' (known: {', '.join(MODES)})", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="gpumem-plans-") as plans:
        subprocess.run([args.bench, "--export-plans", plans, *bench_args], check=True)
        parts = []
        for m in modes:
            part = os.path.join(plans, f"{m}.csv")
            env = dict(os.environ)
            if MODES[m]:
                env["PYTORCH_CUDA_ALLOC_CONF"] = MODES[m]
            else:
                env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
            subprocess.run([sys.executable, __file__, "--run-mode", m, "--plans", plans, "--csv", part,
                            "--reps", str(args.reps), "--warmup", str(args.warmup)], check=True, env=env)
            parts.append(part)
        with open(args.csv, "w", newline="") as out:
            w = csv.DictWriter(out, fieldnames=COLUMNS)
            w.writeheader()
            for part in parts:
                with open(part) as f:
                    w.writerows(csv.DictReader(f))
    print(f"torch_caching.py: wrote {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
