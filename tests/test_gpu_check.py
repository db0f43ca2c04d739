#!/usr/bin/env python3
"""test_gpu_check.py: tools/gpu-check's logic, without a GPU.

GPU time is rare and short, so what can be checked here is checked here:

  - the README's "Performance targets" table and the script's measurements
    agree (every id measured, every measurement a README target), and every
    `pass when` reads;
  - each target's verdict on made-up bench rows: MET for figures that meet
    it, MISSED for ones that do not, NOT MEASURED (with the reason) without
    PyTorch's rows;
  - the sanitizer stage on a fake compute-sanitizer: memcheck on every
    program that runs on CUDA (read from ctest), racecheck and synccheck on
    the kernel tests only, the options that keep deliberate API errors and
    CUDA-less programs from counting, an error reported by the tool turning
    into a failed stage with its row, and a tool that refuses the GPU (as in
    a gVisor sandbox) turning into a skip;
  - commands run with stdin closed and are killed with their children at
    their time limit;
  - the frameworks stage on a fake worker: the eight runs and their
    environment (expandable segments, the library), the side-by-side
    table, a failed run, absent frameworks and --host as skips with the
    reason, no time left.

    python3 tests/test_gpu_check.py --build-dir BUILD      the unit tests
    python3 tests/test_gpu_check.py --report R.md [--host]  check a report

The second form is what tools/test runs after `tools/gpu-check --host
--quick`: the report must have every stage of the script, in order, and
every README target as a row with a verdict.
"""
import argparse
import importlib.machinery
import importlib.util
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPT = os.path.join(ROOT, "tools", "gpu-check")


def load_gpu_check():
    sys.dont_write_bytecode = True
    loader = importlib.machinery.SourceFileLoader("gpu_check", SCRIPT)
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


gc = load_gpu_check()
BUILD_DIR = None


def row(allocator, workload, params, median, threads=1, scaling=0.0, live=0, reserved=0, calls=""):
    return {"backend": "cuda", "device": "made up", "date": "2026-01-01 00:00 UTC", "allocator": allocator,
            "workload": workload, "params": params, "threads": str(threads), "ops": "100", "reps": "5",
            "median_ns": f"{median:.1f}", "min_ns": f"{median:.1f}", "max_ns": f"{median:.1f}",
            "ops_per_s": f"{1e9 / median:.1f}", "scaling": f"{scaling:.3f}", "peak_live_bytes": str(live),
            "peak_reserved_bytes": str(reserved), "driver_calls": str(calls), "status": "ok"}


def good_rows():
    """Rows of a run that meets every README target."""
    b, t = [], []
    for size in ("256B", "4K", "64K", "1M", "16M"):
        b.append(row("cuda-async", "pairs", f"size={size}", 1000))
        b.append(row("gpumem-pool", "pairs", f"size={size}", 50))
        t.append(row("torch-caching", "pairs", f"size={size}", 600))
        t.append(row("torch-expandable", "pairs", f"size={size}", 700))
    for size in ("256B", "64K", "1M"):
        b.append(row("gpumem-arena", "pairs", f"size={size} live=10", 40))
        b.append(row("gpumem-arena", "pairs", f"size={size} live=100000", 45))
    for alloc, per16 in (("gpumem-pool", 9.0), ("gpumem-arena", 5.0)):
        for n in (1, 2, 4, 8, 16):
            b.append(row(alloc, "threads", f"T={n} pairs size=64K", 100, threads=n,
                         scaling=1.0 if n == 1 else per16 * n / 16))
    b.append(row("cuda-async", "random", "uniform<=4M p=0.60 cap=1G", 2000))
    b.append(row("gpumem-pool", "random", "uniform<=4M p=0.60 cap=1G", 300))
    b.append(row("gpumem-pool", "random", "uniform<=64M p=0.60 cap=1G", 5000))  # not the target's row
    b.append(row("cuda-async", "random", "uniform<=64M p=0.60 cap=1G", 1000))
    live = 5 << 30
    b.append(row("cuda-async", "replay", "resnet50_train.csv.gz", 1500, live=live, reserved=live * 2))
    b.append(row("gpumem-pool", "replay", "resnet50_train.csv.gz", 400, live=live, reserved=int(live * 1.04)))
    b.append(row("gpumem-arena", "replay", "resnet50_train.csv.gz", 40, live=live, reserved=int(live * 1.09)))
    t.append(row("torch-caching", "replay", "resnet50_train.csv.gz", 1300, live=live, reserved=live))
    # Per step: realloc 1188 ms, the floor 10.8 ms, exact 11 ms, geometric 0.9 ms;
    # the 512M rows (8x) are not the README's 64 MiB steps.
    for step, scale in (("512M", 8.0), ("64M", 1.0)):
        p = f"0->8G step={step}"
        b.append(row("realloc", "grow", p, 1188e6 * scale, calls=384))
        b.append(row("vmm-floor", "grow", p, 10.8e6 * scale, calls=384))
        b.append(row("buffer-exact", "grow", p, 11.0e6 * scale, calls=384))
        b.append(row("buffer-geometric", "grow", p, 0.9e6 * scale, calls=30))
    for alloc, calls in (("buffer-exact", 0), ("buffer-geometric", 0), ("vmm-floor", 495), ("realloc", 60)):
        b.append(row(alloc, "grow", "N=1G +-1", 50, calls=calls))
    return b, t


class Targets(unittest.TestCase):
    def test_readme_and_script_agree(self):
        targets = gc.read_readme_targets()
        ids = [t["id"] for t in targets]
        self.assertEqual(len(ids), len(set(ids)), "an id appears twice in the README's table")
        self.assertEqual(set(ids), set(gc.TARGETS),
                         "README ids without a measurement: %s; measurements without a README row: %s"
                         % (sorted(set(ids) - set(gc.TARGETS)), sorted(set(gc.TARGETS) - set(ids))))
        for t in targets:
            self.assertTrue(t["target"] and t["measured"], t)
            self.assertIn(t["op"], (">=", "<=", "=="))

    def test_thresholds(self):
        self.assertEqual(gc.parse_threshold("`>= 100`"), (">=", 100.0))
        self.assertEqual(gc.parse_threshold("<= 1/8"), ("<=", 0.125))
        self.assertEqual(gc.parse_threshold("`== 0`"), ("==", 0.0))
        with self.assertRaisesRegex(ValueError, "cannot read the threshold 'about 5'"):
            gc.parse_threshold("about 5")

    def test_a_run_that_meets_every_target(self):
        b, t = good_rows()
        got = {e["id"]: e for e in gc.evaluate_targets(gc.read_readme_targets(), b, t)}
        bad = {k: (v["verdict"], v["value"], v["how"]) for k, v in got.items() if v["verdict"] != "MET"}
        self.assertEqual(bad, {})
        self.assertAlmostEqual(got["pool-pairs-vs-async"]["value"], 0.05)
        self.assertAlmostEqual(got["pool-pairs-vs-torch"]["value"], 50 / 600)
        self.assertAlmostEqual(got["buffer-vs-realloc"]["value"], 1188e6 / 11.0e6)
        self.assertAlmostEqual(got["buffer-exact-vs-floor"]["value"], 11.0 / 10.8)
        self.assertAlmostEqual(got["arena-live-100k"]["value"], 45 / 40)
        self.assertAlmostEqual(got["pool-threads"]["value"], 9.0)
        self.assertAlmostEqual(got["pool-replay-reserved"]["value"], 1.04, places=3)

    def test_each_miss_is_seen(self):
        b, t = good_rows()
        for r in b:
            if r["allocator"] == "gpumem-pool" and r["params"] == "size=1M":
                r["median_ns"] = "150.0"           # 0.15 of cudaMallocAsync at 1 MiB: the worst size
            if r["allocator"] == "gpumem-arena" and r["params"] == "size=64K live=10":
                r["median_ns"] = "51.0"            # over 50 ns
            if r["allocator"] == "buffer-geometric" and r["params"] == "N=1G +-1":
                r["driver_calls"] = "2"            # a driver call in N+-1
            if r["allocator"] == "gpumem-arena" and r["workload"] == "threads" and r["threads"] == "16":
                r["scaling"] = "3.900"
        got = {e["id"]: e for e in gc.evaluate_targets(gc.read_readme_targets(), b, t)}
        missed = sorted(k for k, v in got.items() if v["verdict"] == "MISSED")
        # 150 ns is also 0.25 of PyTorch's 600 ns: over 1/8.
        self.assertEqual(missed, ["arena-pairs-ns", "arena-threads", "buffer-batch-calls", "pool-pairs-vs-async",
                                  "pool-pairs-vs-torch"])
        self.assertAlmostEqual(got["pool-pairs-vs-async"]["value"], 0.15)
        self.assertIn("worst at 1M", got["pool-pairs-vs-async"]["how"])
        self.assertEqual(got["buffer-batch-calls"]["value"], 2.0)

    def test_without_pytorch(self):
        b, _ = good_rows()
        got = {e["id"]: e for e in gc.evaluate_targets(gc.read_readme_targets(), b, [])}
        nm = sorted(k for k, v in got.items() if v["verdict"] == "NOT MEASURED")
        self.assertEqual(nm, ["pool-pairs-vs-torch", "pool-replay-vs-torch"])
        self.assertIn("no PyTorch rows", got["pool-replay-vs-torch"]["how"])

    def test_failed_rows_are_not_used(self):
        b, t = good_rows()
        for r in b:
            if r["workload"] == "replay" and r["allocator"] == "gpumem-arena":
                r["status"] = "operation 385 of 9200: out of device memory"
        got = {e["id"]: e for e in gc.evaluate_targets(gc.read_readme_targets(), b, t)}
        self.assertEqual(got["arena-replay-reserved"]["verdict"], "NOT MEASURED")

    def test_unknown_readme_id(self):
        tg = [{"id": "pool-teleports", "target": "x", "measured": "y", "op": "<=", "threshold": 1.0,
               "pass_when": "<= 1"}]
        got = gc.evaluate_targets(tg, [], [])
        self.assertEqual(got[0]["verdict"], "NOT MEASURED")
        self.assertIn("no measurement", got[0]["how"])


def fake_context(tmp, host=False):
    argv = ["--out", os.path.join(tmp, "out"), "--work", os.path.join(tmp, "work"), "--jobs", "4"]
    if host:
        argv.append("--host")
    ctx = gc.Context(gc.parse_args(argv))
    os.makedirs(ctx.out, exist_ok=True)
    return ctx


class Running(unittest.TestCase):
    def test_stdin_is_closed(self):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = fake_context(tmp)
            r = ctx.run("read", ["sh", "-c", "if read x; then echo got; else echo eof; fi"], 20)
            self.assertTrue(r.ok)
            self.assertEqual(r.output().strip(), "eof")

    def test_timeout_kills_the_group(self):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = fake_context(tmp)
            marker = os.path.join(tmp, "survived")
            t0 = time.monotonic()
            r = ctx.run("sleepy", ["sh", "-c", f"(sleep 3; touch {marker}) & sleep 60"], 1)
            self.assertTrue(r.timed_out)
            self.assertLess(time.monotonic() - t0, 15)
            self.assertIn("cut off after", r.why())
            time.sleep(3.5)
            self.assertFalse(os.path.exists(marker), "a child of the command outlived its time limit")


    def test_background_is_ended(self):
        with tempfile.TemporaryDirectory() as tmp:
            ctx = fake_context(tmp)
            ctx.start_background("sleepy", ["sleep", "60"], ctx.env())
            t0 = time.monotonic()
            ctx.finish_background(0.5)
            self.assertLess(time.monotonic() - t0, 10)
            name, r = ctx.commands[-1]
            self.assertEqual(name, "sleepy")
            self.assertTrue(r.timed_out)
            self.assertEqual(ctx.background, [])


class BenchRuns(unittest.TestCase):
    LIST = """allocators (--allocators; every workload but grow):
  cuda-malloc          cudaMalloc / cudaFree (synchronous, no cache)
  gpumem-arena         libgpumem's peer-mapped arena
  gpumem-arena-lean    the arena with REMAP_MEMORY
  malloc               host memory: glibc malloc/free
  mimalloc             host memory: mimalloc; here: mimalloc: libmimalloc.so.2 is not installed
grow's rows (the grow workload; libgpumem's buffer against the others):
  buffer-exact         gpumem_buffer_t, exact growth
workloads:
  pairs                alloc+free of one size
"""

    def test_the_lean_arena_runs_in_replays_only(self):
        """Every run but the replays names --list's allocators less the lean
        arena and yardsticks missing here; the replays take every allocator,
        and the generation replay compares the two arenas."""
        with tempfile.TemporaryDirectory() as tmp:
            exe = os.path.join(tmp, "gpumem-bench")
            with open(exe, "w") as f:
                f.write("#!/bin/sh\ncat <<'EOF'\n" + self.LIST + "EOF\n")
            os.chmod(exe, 0o755)
            most = gc.bench_allocators(exe, dict(os.environ))
            self.assertEqual(most, "cuda-malloc,gpumem-arena,malloc")
            self.assertIsNone(gc.bench_allocators(os.path.join(tmp, "absent"), dict(os.environ)))
            ctx = fake_context(tmp)
            runs = dict(gc.bench_runs(ctx, "t.csv.gz", most))
            for name in ("pairs", "random-4M", "threads", "random-64M", "streams", "first"):
                args = runs[name]
                self.assertEqual(args[args.index("--allocators") + 1], most, name)
            for name, args in runs.items():
                if not name.startswith("replay") and "--allocators" in args:
                    self.assertNotIn("lean", args[args.index("--allocators") + 1], name)
            self.assertNotIn("--allocators", runs["replay"])
            gen = runs["replay-generation"]
            self.assertIn("gpumem-arena,gpumem-arena-lean,cuda-async", gen)
            self.assertIn("synth:generation:1", gen)
            # Without a list every run takes every allocator.
            for name, args in gc.bench_runs(ctx, None, None):
                if name not in ("replay-generation", "arena-live"):
                    self.assertNotIn("--allocators", args, name)


class TorchPeer(unittest.TestCase):
    def test_the_early_build_is_the_peers_build(self):
        """gpu-check builds PyTorch's extension early with the call that
        bench/peers/torch_caching.py makes; a different call would build a
        different extension and save nothing."""
        import ast

        def load_inline_calls(source):
            return [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", getattr(n.func, "attr", None)) == "load_inline"]

        with open(os.path.join(ROOT, "bench", "peers", "torch_caching.py")) as f:
            peer = load_inline_calls(f.read())
        ours = load_inline_calls(gc.TORCH_BUILD)
        self.assertEqual((len(peer), len(ours)), (1, 1))

        def keywords(call):
            out = {}
            for k in call.keywords:
                text = ast.dump(k.value)
                out[k.arg] = text.replace("Attribute(value=Name(id='torch_caching', ctx=Load()), attr='CPP', "
                                          "ctx=Load())", "Name(id='CPP', ctx=Load())")
            return out

        self.assertEqual(keywords(ours[0]), keywords(peer[0]))
        self.assertEqual(len(ours[0].args), len(peer[0].args))


FAKE_SANITIZER = r"""#!/bin/sh
# A stand-in for compute-sanitizer: logs its arguments, then answers as told
# by $FAKE_MODE for the program (its last argument).
echo "$*" >> "$FAKE_LOG"
prog=$(basename "$(eval echo \${$#})")
tool=memcheck
prev=
for a in "$@"; do
  [ "$prev" = --tool ] && tool=$a
  prev=$a
done
echo "========= COMPUTE-SANITIZER"
if [ "$FAKE_MODE" = refuse ]; then
  echo "========= Error: Device not supported"
  exit 1
fi
if [ "$tool" = racecheck ] && [ "$prog" = "$FAKE_BAD" ]; then
  echo "========= Error: Race reported between Write access at 0x100 and Read access at 0x200"
  echo "========= RACECHECK SUMMARY: 1 hazard displayed (1 error, 0 warnings)"
  echo "========= ERROR SUMMARY: 2 errors"
  exit 99
fi
echo "========= ERROR SUMMARY: 0 errors"
exit 0
"""


class Sanitizer(unittest.TestCase):
    def setUp(self):
        if not os.environ.get("GPU_CHECK_BUILD_DIR"):
            self.skipTest("needs --build-dir (a configured test tree)")

    def run_stage(self, tmp, mode, bad=""):
        fake = os.path.join(tmp, "compute-sanitizer")
        with open(fake, "w") as f:
            f.write(FAKE_SANITIZER)
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
        log = os.path.join(tmp, "calls.log")
        os.environ.update(FAKE_LOG=log, FAKE_MODE=mode, FAKE_BAD=bad)
        ctx = fake_context(tmp)
        ctx.debug = os.environ["GPU_CHECK_BUILD_DIR"]
        ctx.built["debug"] = True
        ctx.env_facts["tools"] = {"compute-sanitizer": {"path": fake, "version": "fake"}}
        st = next(s for s in gc.STAGES if s.name == "sanitizer")
        st.limit_now = lambda: 120.0
        res = st.func(ctx, st)
        with open(log) as f:
            calls = [line.split() for line in f]
        return res, calls

    def test_programs_tools_and_options(self):
        build = os.environ["GPU_CHECK_BUILD_DIR"]
        kernels = os.path.exists(os.path.join(build, "tests", "test_pool_order"))
        with tempfile.TemporaryDirectory() as tmp:
            res, calls = self.run_stage(tmp, "ok")
        self.assertEqual(res.status, gc.PASS, res.details)
        by_tool = {}
        for c in calls:
            tool = c[c.index("--tool") + 1]
            by_tool.setdefault(tool, []).append(os.path.basename(c[-1]))
            for opt in (["--report-api-errors", "no"], ["--require-cuda-init", "no"], ["--error-exitcode", "99"]):
                i = c.index(opt[0])
                self.assertEqual(c[i:i + 2], opt)
        memcheck = set(by_tool["memcheck"])
        # Every suite with a .cuda run, every example, and the suites with no backend.
        for name in ("test_backend", "test_fault", "test_buffer", "test_pool", "test_arena", "test_device",
                     "test_contexts", "test_init", "test_visible", "01_vmm_basics", "05_peer_arena"):
            self.assertIn(name, memcheck)
        for name in ("test_host_backend", "test_seam", "test_error", "gpumem-bench", "gpumem-info"):
            self.assertNotIn(name, memcheck)  # host-only suites, and tools run with arguments
        self.assertEqual(len(by_tool["memcheck"]), len(memcheck), "a program ran twice under memcheck")
        expect = sorted(gc.KERNEL_TESTS) if kernels else []
        self.assertEqual(sorted(by_tool.get("racecheck", [])), expect)
        self.assertEqual(sorted(by_tool.get("synccheck", [])), expect)
        self.assertIn(f"{len(calls)} of {len(calls)} runs clean", res.summary)

    def test_an_error_fails_the_stage(self):
        build = os.environ["GPU_CHECK_BUILD_DIR"]
        if not os.path.exists(os.path.join(build, "tests", "test_pool_order")):
            self.skipTest("the kernel tests are not built (no nvcc)")
        with tempfile.TemporaryDirectory() as tmp:
            res, calls = self.run_stage(tmp, "ok", bad="test_pool_order")
        self.assertEqual(res.status, gc.FAIL)
        self.assertIn(f"{len(calls) - 1} of {len(calls)} runs clean", res.summary)
        self.assertRegex(res.details, r"\| racecheck \| `test_pool_order` \| \*\*2 error\(s\)\*\* \|.*Race reported")
        self.assertRegex(res.details, r"\| synccheck \| `test_pool_order` \| clean \|")

    def test_a_refused_device_is_a_skip(self):
        with tempfile.TemporaryDirectory() as tmp:
            res, calls = self.run_stage(tmp, "refuse")
        self.assertEqual(res.status, gc.SKIP, res.summary)
        self.assertIn(f"refused all {len(calls)} runs", res.summary)


FAKE_WORKER = r"""
import json, os, sys
args = sys.argv[1:]
mode = os.environ.get("FAKE_FRAMEWORKS", "all")
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(" ".join(args) + " PYTORCH_CUDA_ALLOC_CONF=" + os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "-")
            + " GPUMEM_LIBRARY=" + os.environ.get("GPUMEM_LIBRARY", "-") + "\n")
if args[0] == "probe":
    if mode == "none":
        print(json.dumps({"torch": None, "torch_why": "ModuleNotFoundError: No module named 'torch'",
                          "cupy": None, "cupy_why": "ModuleNotFoundError: No module named 'cupy'"}))
    else:
        print(json.dumps({"torch": "2.9.0", "torch_cuda": True, "torchvision": "0.24",
                          "transformers": None if mode == "notransformers" else "4.57",
                          "transformers_why": "ModuleNotFoundError", "cupy": "13.6", "cupy_devices": 1}))
    sys.exit(0)
what = args[0]
alloc = args[args.index("--allocator") + 1]
model = args[args.index("--model") + 1] if "--model" in args else "fft+matmul"
out = args[args.index("--json") + 1]
row = {"framework": what, "model": model, "allocator": alloc, "median_step_ms": 10.0, "min_step_ms": 9.0,
       "peak_reserved_bytes": 4 << 30, "peak_in_use_bytes": 3 << 30, "status": "ok", "steps": 12}
if alloc == "gpumem":
    row.update(median_step_ms=11.0, peak_reserved_bytes=3 << 30, gpumem_allocator="gpumem-pool")
if mode == "fail" and model == "gpt2" and alloc == "gpumem":
    print("Traceback: boom", flush=True)
    sys.exit(1)  # no JSON: the row says why
with open(out, "w") as f:
    f.write(json.dumps(row) + "\n")
"""


class Frameworks(unittest.TestCase):
    """The frameworks stage on a fake worker: which runs, with which
    environment, and what the report says."""

    def run_stage(self, tmp, mode, host=False, limit=120.0):
        worker = os.path.join(tmp, "worker.py")
        with open(worker, "w") as f:
            f.write(FAKE_WORKER)
        log = os.path.join(tmp, "calls.log")
        os.environ.update(FAKE_LOG=log, FAKE_FRAMEWORKS=mode)
        ctx = fake_context(tmp, host=host)
        ctx.quick = True
        ctx.release = os.path.join(tmp, "release")
        os.makedirs(ctx.release, exist_ok=True)
        with open(os.path.join(ctx.release, "libgpumem.so"), "w") as f:
            f.write("not really\n")
        saved = gc.FRAMEWORKS_WORKER
        gc.FRAMEWORKS_WORKER = worker
        try:
            st = next(s for s in gc.STAGES if s.name == "frameworks")
            st.limit_now = lambda: limit
            res = st.func(ctx, st)
        finally:
            gc.FRAMEWORKS_WORKER = saved
        calls = []
        if os.path.exists(log):
            with open(log) as f:
                calls = [line.split() for line in f]
        return ctx, res, calls

    def test_every_run_side_by_side(self):
        with tempfile.TemporaryDirectory() as tmp:
            ctx, res, calls = self.run_stage(tmp, "all")
            self.assertEqual(res.status, gc.PASS, res.summary)
            self.assertEqual(res.summary, "8 of 8 runs ok")
            runs = [(c[0], c[c.index("--allocator") + 1]) for c in calls[1:]]
            self.assertEqual(runs, [("torch", "default"), ("torch", "expandable"), ("torch", "gpumem")] * 2
                             + [("cupy", "cupy"), ("cupy", "gpumem")])
            conf = {c[c.index("--allocator") + 1]: c[-2] for c in calls[1:] if c[0] == "torch"}
            self.assertEqual(conf, {"default": "PYTORCH_CUDA_ALLOC_CONF=-", "gpumem": "PYTORCH_CUDA_ALLOC_CONF=-",
                                    "expandable": "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"})
            self.assertTrue(all(c[-1] == "GPUMEM_LIBRARY=" + os.path.join(ctx.release, "libgpumem.so")
                                for c in calls))
            self.assertIn("| resnet18 | gpumem (gpumem-pool) | 11.0 ms | 1.10x | 3.00 GiB | 0.75x | 3.00 GiB | ok |",
                          res.details)
            self.assertIn("| fft+matmul | cupy | 10.0 ms |  | 4.00 GiB |  | 3.00 GiB | ok |", res.details)
            with open(os.path.join(ctx.out, "frameworks.csv")) as f:
                rows = list(gc.csv.DictReader(f))
            self.assertEqual(len(rows), 8)
            self.assertEqual(rows[2]["peak_reserved_bytes"], str(3 << 30))

    def test_a_failed_run_fails_the_stage(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, res, _ = self.run_stage(tmp, "fail")
            self.assertEqual(res.status, gc.FAIL)
            self.assertEqual(res.summary, "7 of 8 runs ok")
            self.assertIn("| gpt2 | gpumem |  |  |  |  |  | exit status 1: Traceback: boom |", res.details)

    def test_absent_frameworks_are_skips_with_the_reason(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, res, calls = self.run_stage(tmp, "none")
            self.assertEqual(res.status, gc.SKIP)
            self.assertIn("No module named 'torch'", res.summary)
            self.assertIn("No module named 'cupy'", res.summary)
            self.assertEqual(len(calls), 1)  # the probe only
            _, res, calls = self.run_stage(tmp, "notransformers")
            self.assertEqual(res.status, gc.PASS)
            self.assertEqual(res.summary, "5 of 5 runs ok; left out: gpt2: transformers is not installed "
                                          "(ModuleNotFoundError)")

    def test_host_and_no_time(self):
        with tempfile.TemporaryDirectory() as tmp:
            _, res, calls = self.run_stage(tmp, "all", host=True)
            self.assertEqual(res.status, gc.SKIP)
            self.assertIn("need a GPU (host emulation)", res.summary)
            self.assertEqual(calls, [])
            _, res, calls = self.run_stage(tmp, "all", limit=9.0)
            self.assertEqual(res.status, gc.TIMEOUT)
            self.assertEqual(res.summary, "0 of 8 runs ok")
            self.assertIn("not run: no time left", res.details)


def check_report(path, host):
    """Problems of a gpu-check report: every stage of the script in order,
    every README target a row with a verdict, the host label where asked."""
    problems = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    stages = re.findall(r"^\| (\w+) \| (PASS|FAIL|SKIP|TIMEOUT) \| ", text, re.M)
    names = [s[0] for s in stages]
    if names != gc.STAGE_NAMES:
        problems.append(f"stages in the report {names}, the script's {gc.STAGE_NAMES}")
    rows = dict(re.findall(r"^\| `([a-z0-9-]+)` \| .* \| (MET|MISSED|NOT MEASURED) \| [^|]* \|$", text, re.M))
    for t in gc.read_readme_targets():
        if t["id"] not in rows:
            problems.append(f"README target {t['id']} has no row with a verdict")
    if host and f"**{gc.HOST_HEAD}.**" not in text:
        problems.append(f"no '{gc.HOST_HEAD}' heading")
    if host and "## Bench table" not in text:
        problems.append("no bench table")
    for name in ("bench.csv", "environment.json", "logs.txt"):
        if not os.path.isfile(os.path.join(os.path.dirname(path), name)):
            problems.append(f"no {name} beside the report")
    return problems, dict(stages), rows


class ReportCheck(unittest.TestCase):
    """The check tools/test makes of a --host report finds what is missing."""

    def write(self, tmp, stages, targets):
        lines = [f"**{gc.HOST_HEAD}.** ...", "", "| stage | result | time | limit | summary |", "|---|---|---|---|---|"]
        lines += [f"| {n} | PASS | 1 s | 9 s | fine |" for n in stages]
        lines += ["", "| id | target | measured | pass when | verdict | from |", "|---|---|---|---|---|---|"]
        lines += [f"| `{t}` | a target | 1.0 | <= 2 | MET | rows |" for t in targets]
        lines += ["", "## Bench table", ""]
        for name in ("report.md", "bench.csv", "environment.json", "logs.txt"):
            with open(os.path.join(tmp, name), "w") as f:
                f.write("\n".join(lines) + "\n" if name == "report.md" else "x\n")
        return os.path.join(tmp, "report.md")

    def test_complete_and_incomplete(self):
        ids = [t["id"] for t in gc.read_readme_targets()]
        with tempfile.TemporaryDirectory() as tmp:
            problems, _, rows = check_report(self.write(tmp, gc.STAGE_NAMES, ids), host=True)
            self.assertEqual(problems, [])
            self.assertEqual(len(rows), len(ids))
            problems, _, _ = check_report(self.write(tmp, [n for n in gc.STAGE_NAMES if n != "sanitizer"], ids[1:]),
                                          host=True)
            self.assertEqual(len(problems), 2, problems)
            self.assertIn("stages in the report", problems[0])
            self.assertIn(f"README target {ids[0]} has no row", problems[1])
            os.remove(os.path.join(tmp, "bench.csv"))
            problems, _, _ = check_report(self.write(tmp, gc.STAGE_NAMES, ids), host=True)
            self.assertEqual(problems, [])  # write() made it again
            os.remove(os.path.join(tmp, "logs.txt"))
            problems, _, _ = check_report(os.path.join(tmp, "report.md"), host=True)
            self.assertEqual(problems, ["no logs.txt beside the report"])


def main():
    global BUILD_DIR
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", help="a configured build tree with the test suites")
    ap.add_argument("--report", help="check this report.md instead of running the unit tests")
    ap.add_argument("--host", action="store_true", help="the report is from a --host run")
    args, rest = ap.parse_known_args()
    if args.report:
        problems, stages, rows = check_report(args.report, args.host)
        for p in problems:
            print(f"test_gpu_check: {args.report}: {p}")
        if problems:
            return 1
        print(f"test_gpu_check: report ok: {len(stages)} stages ("
              + ", ".join(f"{k} {v}" for k, v in stages.items()) + f"), {len(rows)} target rows")
        return 0
    if args.build_dir:
        os.environ["GPU_CHECK_BUILD_DIR"] = os.path.abspath(args.build_dir)
    prog = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
