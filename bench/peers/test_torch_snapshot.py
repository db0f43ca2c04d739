#!/usr/bin/env python3
"""Tests of torch_snapshot.py on snapshots built here from the documented
format (torch/cuda/memory.py, _snapshot's TraceEntry): no PyTorch, no GPU.

    python3 bench/peers/test_torch_snapshot.py --bench build/bench/gpumem-bench

Each case checks the trace line by line and the summary's counts; the last
ones write a pickle as _dump_snapshot does, convert it through the command
line, and have gpumem-bench replay and fit the result on the host backend.
"""
import argparse
import gzip
import os
import pickle
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_snapshot as ts  # noqa: E402

BENCH = None
S0, S1 = 0, 94245302834944  # the default stream and a side stream's cudaStream_t
MIB = 1 << 20


def entry(action, addr, size, stream=S0):
    return {"action": action, "addr": addr, "size": size, "stream": stream,
            "frames": [{"filename": "train.py", "line": 1, "name": "step"}]}


def snapshot(*entries, devices=1):
    traces = [[] for _ in range(devices)]
    traces[0] = list(entries)
    return {"segments": [], "device_traces": traces}


class Convert(unittest.TestCase):
    def test_one_stream_address_reuse_and_skipped_actions(self):
        snap = snapshot(
            entry("segment_alloc", 0x7f0000000000, 20 * MIB),
            entry("alloc", 0x7f0000000000, 4 * MIB),
            entry("alloc", 0x7f0000400000, 1024),
            entry("free_requested", 0x7f0000000000, 4 * MIB),
            entry("free_completed", 0x7f0000000000, 4 * MIB),
            entry("alloc", 0x7f0000000000, 2 * MIB),  # the address again: a new id
            {"action": "snapshot", "addr": 0, "size": 0, "stream": 0},
            {"action": "oom", "size": 8 * MIB, "stream": 0, "device_free": 1024},
            entry("free_requested", 0x7f0000000000, 2 * MIB),
            entry("free_completed", 0x7f0000000000, 2 * MIB))
        lines, s = ts.convert(snap)
        self.assertEqual(lines, ["a,0,4194304,0", "a,1,1024,0", "f,0,4194304,0",
                                 "a,2,2097152,0", "f,2,2097152,0"])
        self.assertEqual(s, {"allocs": 3, "frees": 2, "skipped_actions": 3,
                             "frees_without_alloc": 0, "live_at_end": 1, "streams": 1})

    def test_free_written_where_it_completes(self):
        # Block A is used on the side stream (record_stream): freed by the
        # program before B's allocation, reusable only after it.
        snap = snapshot(
            entry("alloc", 0x1000, 512, S1),
            entry("free_requested", 0x1000, 512, S1),
            entry("alloc", 0x2000, 1536, S0),
            entry("free_completed", 0x1000, 512, S1),
            entry("free_requested", 0x2000, 1536, S0),
            entry("free_completed", 0x2000, 1536, S0))
        lines, s = ts.convert(snap)
        # streams numbered by first appearance: the side stream came first
        self.assertEqual(lines, ["a,0,512,0", "a,1,1536,1", "f,0,512,0", "f,1,1536,1"])
        self.assertEqual(s["streams"], 2)

    def test_without_free_completed_the_request_is_the_free(self):
        snap = snapshot(
            entry("alloc", 0x1000, 512),
            entry("free_requested", 0x1000, 512),
            entry("alloc", 0x2000, 512),
            entry("alloc", 0x1000, 1024),
            entry("free_requested", 0x2000, 512))
        lines, s = ts.convert(snap)
        self.assertEqual(lines, ["a,0,512,0", "f,0,512,0", "a,1,512,0", "a,2,1024,0",
                                 "f,1,512,0"])
        self.assertEqual(s["live_at_end"], 1)

    def test_frees_before_the_history_are_skipped_and_counted_once(self):
        snap = snapshot(
            entry("free_requested", 0x9000, 512),  # allocated before recording
            entry("free_completed", 0x9000, 512),
            entry("free_completed", 0xa000, 512),  # a completion alone
            entry("alloc", 0x1000, 512),
            entry("free_requested", 0x1000, 512),
            entry("free_completed", 0x1000, 512))
        lines, s = ts.convert(snap)
        self.assertEqual(lines, ["a,0,512,0", "f,0,512,0"])
        self.assertEqual(s["frees_without_alloc"], 2)
        self.assertEqual(s["live_at_end"], 0)

    def test_device_is_chosen(self):
        snap = snapshot(entry("alloc", 0x1000, 512), devices=2)
        snap["device_traces"][1] = [entry("alloc", 0x5000, 2048, S1)]
        self.assertEqual(ts.convert(snap, device=1)[0], ["a,0,2048,0"])

    def test_bad_snapshots_are_refused_with_the_reason(self):
        cases = [
            ({"segments": []}, 0, "no 'device_traces'"),
            (snapshot(entry("alloc", 1, 2)), 1, "no device 1: the snapshot has 1"),
            ({"segments": [], "device_traces": [[]]}, 0, "device 0 has no history"),
            (snapshot(entry("resize", 1, 2)), 0, "entry 0: unknown action 'resize'"),
            (snapshot({"action": "alloc", "size": 2, "stream": 0}), 0,
             "entry 0 (alloc): bad or missing field 'addr'"),
            (snapshot(entry("alloc", 0x10, 512), entry("alloc", 0x10, 512)), 0,
             "entry 1: address 0x10 allocated again while live (allocated at entry 0)"),
            (snapshot(entry("alloc", 0x10, 512), entry("free_requested", 0x10, 1024)), 0,
             "entry 1: free_requested of 0x10 with size 1024, allocated with 512"),
        ]
        for snap, device, message in cases:
            with self.assertRaises(ts.SnapshotError) as cm:
                ts.convert(snap, device)
            self.assertIn(message, str(cm.exception))


class NotData:
    pass


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def run_script(self, *args):
        return subprocess.run([sys.executable, os.path.join(os.path.dirname(ts.__file__),
                                                            "torch_snapshot.py")] + list(args),
                              capture_output=True, text=True)

    def test_a_pickle_with_a_class_is_refused(self):
        with open(self.path("bad.pickle"), "wb") as f:
            pickle.dump({"device_traces": [[NotData()]]}, f)
        r = self.run_script(self.path("bad.pickle"), "--out", self.path("x.csv"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("the pickle names __main__.NotData", r.stderr)
        self.assertFalse(os.path.exists(self.path("x.csv")))

    def test_convert_replay_and_fit(self):
        # Two streams; 3 MiB blocks that the side stream frees late.
        entries = []
        for step in range(20):
            base = 0x7f0000000000 + step * 64 * MIB
            entries += [entry("alloc", base, 3 * MIB, S0), entry("alloc", base + 8 * MIB, MIB, S1),
                        entry("free_requested", base, 3 * MIB, S0),
                        entry("free_completed", base, 3 * MIB, S0),
                        entry("free_requested", base + 8 * MIB, MIB, S1),
                        entry("free_completed", base + 8 * MIB, MIB, S1)]
        with open(self.path("snap.pickle"), "wb") as f:
            pickle.dump(snapshot(*entries), f)
        r = self.run_script(self.path("snap.pickle"), "--out", self.path("mine.csv.gz"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("40 allocs, 40 frees, 2 streams", r.stderr)
        with gzip.open(self.path("mine.csv.gz"), "rt") as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[:3], ["op,id,size,stream", "a,0,3145728,0", "a,1,1048576,1"])
        self.assertEqual(len(lines), 81)
        if BENCH is None:
            self.skipTest("no --bench: the replay is not run")
        env = dict(os.environ, GPUMEM_BACKEND="host")
        for workload, expect in (("replay", "replay   mine.csv.gz"),
                                 # 4 MiB live, each block a whole number of 2 MiB granules
                                 ("fit", "fit      min=6M waste=50.0%")):
            r = subprocess.run([BENCH, workload, "--trace", self.path("mine.csv.gz"), "--reps", "1",
                                "--allocators", "cuda-malloc"], capture_output=True, text=True,
                               env=env)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(expect, r.stdout)
            self.assertIn("1 row, none failed", r.stderr)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--bench", help="gpumem-bench, to replay the converted trace")
    args, rest = p.parse_known_args()
    BENCH = args.bench
    unittest.main(argv=[sys.argv[0]] + rest)
