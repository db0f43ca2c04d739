#!/usr/bin/env python3
"""Check the CSV and JSON of the bench.quick ctest (bench/CMakeLists.txt).

    check_outputs.py quick.csv quick.json

The same rows in both, every one ok, 7 allocators x 8 rows and 8 grow rows on
device memory, each host yardstick (malloc, and mimalloc where its library
is installed) with one pairs row per size and no other row, the columns
tools read by name in their order (new ones only at the end), and the header
saying the host backend. Prints "outputs ok" or why not, with exit status 1.
"""
import csv
import json
import sys

COLUMNS = ["backend", "device", "date", "allocator", "workload", "params", "threads", "ops", "reps",
           "median_ns", "min_ns", "max_ns", "ops_per_s", "scaling", "peak_live_bytes",
           "peak_reserved_bytes", "driver_calls", "status", "memory", "model_us_per_op"]


def main(csv_path, json_path):
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS, reader.fieldnames
        rows = list(reader)
    with open(json_path) as f:
        doc = json.load(f)
    assert len(rows) == len(doc["results"]), (len(rows), len(doc["results"]))
    bad = [r for r in rows if r["status"] != "ok"]
    assert not bad, bad
    assert doc["header"]["backend"] == "host", doc["header"]
    assert all(r["backend"] == "host" for r in rows)
    device = [r for r in rows if r["memory"] == "device"]
    host = [r for r in rows if r["memory"] == "host"]
    assert len(device) == 7 * 8 + 8, len(device)
    yardsticks = sorted({r["allocator"] for r in host})
    assert yardsticks in (["malloc"], ["malloc", "mimalloc"]), yardsticks
    for name in yardsticks:
        mine = [r for r in host if r["allocator"] == name]
        assert [(r["workload"], r["params"]) for r in mine] == [("pairs", "size=4K"), ("pairs", "size=1M")], mine
    for r, j in zip(rows, doc["results"]):
        assert (r["allocator"], r["workload"], r["params"], r["memory"]) == \
            (j["allocator"], j["workload"], j["params"], j["memory"]), (r, j)
    # The cost model: a number on every device row but grow's and first's
    # (their calls are not from timed repetitions of one plan), none on host rows.
    assert doc["header"]["driver_cost_us"]["set_access"] == 30, doc["header"]
    for r, j in zip(rows, doc["results"]):
        want = r["memory"] == "device" and r["workload"] not in ("grow", "first")
        assert (r["model_us_per_op"] != "") == want, r
        assert (j["model_us_per_op"] is not None) == want, j
        if want:
            assert abs(float(r["model_us_per_op"]) - j["model_us_per_op"]) < 1e-3, (r, j)
    print(f"outputs ok ({len(rows)} rows, yardsticks: {', '.join(yardsticks)})")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except (AssertionError, OSError, KeyError, ValueError, TypeError) as e:
        print(f"check_outputs.py: {type(e).__name__}: {e}")
        sys.exit(1)
