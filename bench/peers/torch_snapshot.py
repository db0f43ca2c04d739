#!/usr/bin/env python3
"""Convert a PyTorch CUDA memory snapshot into a gpumem-bench trace.

    # in the training script (PyTorch >= 2.1):
    torch.cuda.memory._record_memory_history(max_entries=1000000)
    train_a_few_steps()
    torch.cuda.memory._dump_snapshot("snapshot.pickle")

    # here (no PyTorch needed):
    python3 bench/peers/torch_snapshot.py snapshot.pickle --out mine.csv.gz
    gpumem-bench replay --trace mine.csv.gz
    gpumem-bench fit --trace mine.csv.gz

The snapshot format (PyTorch's torch/cuda/memory.py, the docstring of
_snapshot; docs/source/torch_cuda_memory.md, "Generating a Snapshot"): a dict
with "segments" and "device_traces", the latter a list with one list per
device of TraceEntry dicts, recorded only while _record_memory_history is
enabled:

    action: "alloc"           memory allocated
            "free_requested"  the program freed it (the tensor died)
            "free_completed"  memory reclaimed and reusable
            "segment_alloc", "segment_free", "segment_map",
            "segment_unmap"   the caching allocator asked CUDA for memory
            "snapshot"        a snapshot was taken
            "oom"             an out-of-memory error
    addr: int (absent for oom), size: int, stream: int (a cudaStream_t),
    frames: [...], device_free (oom only), time_us (newer versions)

What becomes of them:
  - alloc -> "a", with an id of its own: an address is reused after a free,
    so ids are a counter, and a table maps each address to its live id;
  - the free is written where "free_completed" is, when the snapshot has
    one for the block, else where "free_requested" is. free_completed is when
    PyTorch could reuse the memory: a block used on another stream
    (record_stream) is freed by the program but reused only once that
    stream's work is done, and a replay that freed it earlier would let
    another allocator reuse memory PyTorch could not. When the block is
    used on one stream only, both come together;
  - segment_*, snapshot and oom are the caching allocator's own doings, not
    the program's: skipped (counted in the summary);
  - a free of an address with no alloc in the history (a block allocated
    before recording started, or lost when the ring buffer of max_entries
    wrapped) is skipped and counted;
  - blocks still live at the end are left live (gpumem-bench frees them when
    the replay ends) and counted;
  - streams are numbered 0, 1, ... in order of first appearance (the
    trace's stream column is an index, not a handle);
  - size is the entry's size: the block's, which PyTorch rounds up to
    512 bytes (what the program asked for is not in the trace entry).

The pickle from _dump_snapshot holds only dicts, lists, strings and numbers;
it is read with an unpickler that refuses anything else (a pickle can run
code: only convert snapshots you trust anyway). convert() takes the dict
directly, for use from Python (torch.cuda.memory._snapshot()).

Exit status: 0 written; 2 bad arguments, an unreadable or malformed snapshot,
no such device or an empty history (the message says which).
"""
import argparse
import gzip
import io
import pickle
import sys

SKIPPED_ACTIONS = ("segment_alloc", "segment_free", "segment_map", "segment_unmap", "snapshot",
                   "oom")


class SnapshotError(Exception):
    """The snapshot cannot be converted; the message says why."""


class _DataOnly(pickle.Unpickler):
    """Unpickles plain data only: any class or function is refused."""

    def find_class(self, module, name):
        raise SnapshotError("the pickle names %s.%s: not a memory snapshot of plain data "
                            "(only _dump_snapshot's pickles are read)" % (module, name))


def load(path):
    """The snapshot dict from a pickle file (gzip-compressed too)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        return _DataOnly(io.BytesIO(data)).load()
    except SnapshotError:
        raise
    except Exception as e:  # pickle raises many kinds on damaged data
        raise SnapshotError("%s: not a pickle (%s)" % (path, e))


def convert(snapshot, device=0):
    """Convert a snapshot dict: returns (lines, summary), lines the trace's
    "op,id,size,stream" rows without the header, summary a dict of counts."""
    if not isinstance(snapshot, dict) or "device_traces" not in snapshot:
        raise SnapshotError("not a memory snapshot: no 'device_traces' (was "
                            "_record_memory_history enabled?)")
    traces = snapshot["device_traces"]
    if not isinstance(traces, list) or not 0 <= device < len(traces):
        raise SnapshotError("no device %d: the snapshot has %d" %
                            (device, len(traces) if isinstance(traces, list) else 0))
    entries = traces[device]
    if not entries:
        raise SnapshotError("device %d has no history (was _record_memory_history enabled "
                            "before the allocations?)" % device)
    # First pass: which allocations have a free_completed (by entry index).
    live_at = {}        # addr -> index of its alloc entry
    completed = set()   # alloc entry indexes whose block has a free_completed
    for i, e in enumerate(entries):
        action, addr = e.get("action"), e.get("addr")
        if action == "alloc":
            live_at[addr] = i
        elif action == "free_completed" and addr in live_at:
            completed.add(live_at.pop(addr))
    summary = {"allocs": 0, "frees": 0, "skipped_actions": 0, "frees_without_alloc": 0,
               "live_at_end": 0, "streams": 0}
    streams = {}
    live = {}  # addr -> (id, size, stream, index of its alloc)
    orphans = set()  # addrs freed (requested) with no alloc in the history
    lines = []
    next_id = 0
    for i, e in enumerate(entries):
        action = e.get("action")
        if action in SKIPPED_ACTIONS:
            summary["skipped_actions"] += 1
            continue
        if action not in ("alloc", "free_requested", "free_completed"):
            raise SnapshotError("device %d, entry %d: unknown action %r" % (device, i, action))
        try:
            addr, size, stream = int(e["addr"]), int(e["size"]), int(e["stream"])
        except (KeyError, TypeError, ValueError) as err:
            raise SnapshotError("device %d, entry %d (%s): bad or missing field %s" %
                                (device, i, action, err))
        if size < 0:
            raise SnapshotError("device %d, entry %d: negative size %d" % (device, i, size))
        if action == "alloc":
            if addr in live:
                raise SnapshotError("device %d, entry %d: address %#x allocated again while "
                                    "live (allocated at entry %d)" % (device, i, addr,
                                                                     live[addr][3]))
            if stream not in streams:
                streams[stream] = len(streams)
            live[addr] = (next_id, size, streams[stream], i)
            lines.append("a,%d,%d,%d" % (next_id, size, streams[stream]))
            next_id += 1
            summary["allocs"] += 1
            continue
        block = live.get(addr)
        if block is None:
            # Both frees of a block allocated before the history: count it once.
            if action == "free_requested":
                orphans.add(addr)
                summary["frees_without_alloc"] += 1
            elif addr in orphans:
                orphans.discard(addr)
            else:
                summary["frees_without_alloc"] += 1
            continue
        wait = block[3] in completed
        if (action == "free_completed") != wait:
            continue  # the other of the two frees is the one written
        ident, bsize, bstream, _ = live.pop(addr)
        if size != bsize:
            raise SnapshotError("device %d, entry %d: %s of %#x with size %d, allocated with "
                                "%d" % (device, i, action, addr, size, bsize))
        lines.append("f,%d,%d,%d" % (ident, bsize, bstream))
        summary["frees"] += 1
    summary["live_at_end"] = len(live)
    summary["streams"] = len(streams)
    return lines, summary


def write(path, lines):
    text = "op,id,size,stream\n" + "".join(line + "\n" for line in lines)
    data = text.encode()
    if path.endswith(".gz"):
        data = gzip.compress(data)
    if path == "-":
        sys.stdout.write(text)
        return
    with open(path, "wb") as f:
        f.write(data)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="torch_snapshot.py",
        description="Convert a PyTorch memory snapshot (torch.cuda.memory._dump_snapshot, "
                    "with _record_memory_history enabled) into a gpumem-bench trace.")
    p.add_argument("snapshot", help="the pickle from _dump_snapshot (plain or gzip)")
    p.add_argument("--out", required=True, help="the trace to write: .csv, .csv.gz, or - "
                   "(stdout)")
    p.add_argument("--device", type=int, default=0, help="the device whose history to take "
                   "(default 0)")
    args = p.parse_args(argv)
    try:
        lines, s = convert(load(args.snapshot), args.device)
        write(args.out, lines)
    except (OSError, SnapshotError) as e:
        print("torch_snapshot.py: %s" % e, file=sys.stderr)
        return 2
    print("torch_snapshot.py: wrote %s: %d allocs, %d frees, %d streams; skipped %d "
          "segment/snapshot/oom entries and %d frees of blocks allocated before the history; "
          "%d blocks live at the end" % (args.out, s["allocs"], s["frees"], s["streams"],
                                         s["skipped_actions"], s["frees_without_alloc"],
                                         s["live_at_end"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
