#!/usr/bin/env python3
"""frameworks_bench.py: train small models on PyTorch's allocators and on
libgpumem, and run a CuPy loop on CuPy's pool and on libgpumem.

One process per (workload, allocator), because an allocator is chosen once
per process (PyTorch refuses to swap an initialised one): tools/gpu-check's
`frameworks` stage starts one per row and reads the JSON line each prints.

    frameworks_bench.py probe
        what is installed: torch (and whether it sees a GPU), torchvision,
        transformers, cupy, numba; one JSON line
    frameworks_bench.py torch --model resnet18|gpt2 --allocator default|expandable|gpumem
                        [--steps N] [--warmup W] [--batch B]
        train for N steps on random data (no downloads, no weights) and
        report the median step time and the peak memory reserved from the
        device: torch.cuda.max_memory_reserved for PyTorch's allocator,
        libgpumem's peak_bytes_reserved for gpumem (PyTorch cannot see
        inside a pluggable allocator)
    frameworks_bench.py cupy --allocator cupy|gpumem [--iters N]
        FFTs and matmuls over a fixed sequence of varying sizes; median
        iteration time and peak reserved (CuPy's pool total_bytes, polled
        after every operation, or libgpumem's peak)

`expandable` is PyTorch's default allocator with
PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True, which the parent sets in
the environment (it is read when CUDA initialises); this script checks it.
`gpumem` needs GPUMEM_LIBRARY (or libgpumem on the loader's path) and the
gpumem package on PYTHONPATH.

The GPT-2 is a 4-layer GPT2LMHeadModel from a transformers GPT2Config,
trained on random tokens whose sequence length varies from step to step
(128, 384, 256, 512, ... the same sequence for every allocator), as
real batches of text do: that is where allocators differ in what they
keep reserved. ResNet-18 is torchvision's, weights=None, on random images.
Every result line has "status": "ok" or the error.
"""

import argparse
import json
import os
import statistics
import sys
import time
import traceback

# The gpumem package of this source tree, when it is not installed.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def emit(result, path=None):
    line = json.dumps(result, sort_keys=True)
    print(line, flush=True)
    if path:
        with open(path, "w") as f:
            f.write(line + "\n")


def probe():
    out = {}
    try:
        import torch
        out["torch"] = torch.__version__
        out["torch_cuda"] = bool(torch.cuda.is_available())
    except Exception as e:  # ImportError, or a broken install
        out["torch"], out["torch_why"] = None, f"{type(e).__name__}: {e}"
    for name in ("torchvision", "transformers", "cupy", "numba"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as e:
            out[name], out[name + "_why"] = None, f"{type(e).__name__}: {e}"
    if out.get("cupy"):
        try:
            import cupy
            out["cupy_devices"] = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:
            out["cupy_devices"], out["cupy_why"] = 0, f"{type(e).__name__}: {e}"
    return out


def gpumem_peak(device=0):
    import gpumem
    s = gpumem.stats(device) or {}
    return s.get("peak_bytes_reserved", 0), s.get("peak_bytes_in_use", 0), s.get("allocator", "")


GPT2_LENGTHS = [128, 384, 256, 512, 192, 448, 320, 64]


def run_torch(args):
    if args.allocator == "expandable":
        conf = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
        if "expandable_segments:True" not in conf:
            raise RuntimeError(f"PYTORCH_CUDA_ALLOC_CONF={conf!r}: expected expandable_segments:True")
    if args.allocator == "gpumem":
        import gpumem.torch
        gpumem.torch.use()  # before the first CUDA tensor
    import torch
    torch.manual_seed(0)
    dev = torch.device("cuda", 0)
    if args.model == "resnet18":
        import torchvision
        model = torchvision.models.resnet18(weights=None).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        batch = args.batch or 64

        def step(i):
            x = torch.randn(batch, 3, 224, 224, device=dev)
            y = torch.randint(0, 1000, (batch,), device=dev)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
    elif args.model == "gpt2":
        import transformers
        cfg = transformers.GPT2Config(n_layer=4, n_head=12, n_embd=768, n_positions=512, vocab_size=50257)
        model = transformers.GPT2LMHeadModel(cfg).to(dev)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        batch = args.batch or 8

        def step(i):
            n = GPT2_LENGTHS[i % len(GPT2_LENGTHS)]
            ids = torch.randint(0, cfg.vocab_size, (batch, n), device=dev)
            opt.zero_grad(set_to_none=True)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
    else:
        raise ValueError(f"unknown model {args.model}")
    times = []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(i)
        torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    out = {"framework": "torch", "model": args.model, "allocator": args.allocator, "steps": args.steps,
           "warmup": args.warmup, "batch": batch, "median_step_ms": statistics.median(times) * 1e3,
           "min_step_ms": min(times) * 1e3, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0)}
    if args.allocator == "gpumem":
        out["peak_reserved_bytes"], out["peak_in_use_bytes"], out["gpumem_allocator"] = gpumem_peak()
    else:
        out["peak_reserved_bytes"] = torch.cuda.max_memory_reserved(0)
        out["peak_in_use_bytes"] = torch.cuda.max_memory_allocated(0)
    return out


CUPY_SIZES = [512, 2048, 1024, 4096, 768, 3072, 1536, 256]


def run_cupy(args):
    import cupy
    pool = None
    if args.allocator == "gpumem":
        import gpumem.cupy
        gpumem.cupy.use()
    else:
        pool = cupy.get_default_memory_pool()
    peak = [0]

    def poll():
        if pool is not None:
            peak[0] = max(peak[0], pool.total_bytes())

    rng = cupy.random.default_rng(0)
    times = []
    for i in range(args.warmup + args.iters):
        n = CUPY_SIZES[i % len(CUPY_SIZES)]
        cupy.cuda.Device(0).synchronize()
        t0 = time.perf_counter()
        a = rng.standard_normal((n, n), dtype=cupy.float32)
        b = rng.standard_normal((n, n), dtype=cupy.float32)
        c = a @ b
        poll()
        f = cupy.fft.fft2(c)
        poll()
        r = cupy.fft.ifft2(f).real
        poll()
        s = float(r.sum())  # synchronizes
        del a, b, c, f, r
        poll()
        cupy.cuda.Device(0).synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
        if s != s:  # NaN: the arithmetic went wrong
            raise RuntimeError(f"iteration {i}: the result is NaN")
    out = {"framework": "cupy", "model": "fft+matmul", "allocator": args.allocator, "steps": args.iters,
           "warmup": args.warmup, "median_step_ms": statistics.median(times) * 1e3,
           "min_step_ms": min(times) * 1e3, "cupy": cupy.__version__}
    if args.allocator == "gpumem":
        out["peak_reserved_bytes"], out["peak_in_use_bytes"], out["gpumem_allocator"] = gpumem_peak()
    else:
        out["peak_reserved_bytes"], out["peak_in_use_bytes"] = peak[0], None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("probe")
    t = sub.add_parser("torch")
    t.add_argument("--model", choices=["resnet18", "gpt2"], required=True)
    t.add_argument("--allocator", choices=["default", "expandable", "gpumem"], required=True)
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--warmup", type=int, default=5)
    t.add_argument("--batch", type=int, default=0)
    c = sub.add_parser("cupy")
    c.add_argument("--allocator", choices=["cupy", "gpumem"], required=True)
    c.add_argument("--iters", type=int, default=32)
    c.add_argument("--warmup", type=int, default=8)
    for p in (t, c):
        p.add_argument("--json", default=None, help="also write the result line here")
    args = ap.parse_args(argv)
    if args.what == "probe":
        emit(probe())
        return 0
    try:
        result = run_torch(args) if args.what == "torch" else run_cupy(args)
        result["status"] = "ok"
        rc = 0
    except Exception as e:
        traceback.print_exc()
        result = {"framework": args.what, "model": getattr(args, "model", "fft+matmul"),
                  "allocator": args.allocator, "status": f"{type(e).__name__}: {e}"[:300]}
        rc = 1
    emit(result, args.json)
    return rc


if __name__ == "__main__":
    sys.exit(main())
