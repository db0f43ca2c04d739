"""gpumem.torch, gpumem.cupy and gpumem.numba.

Two kinds of test. Against the real framework where it is installed (PyTorch
and CuPy need a GPU to allocate, so on a CPU machine they skip with the
reason; Numba's EMM plugin runs here on the host backend with a stand-in
for Numba's context, which is all the plugin reads of it). And against
small stand-ins of the framework APIs the modules call (the calls PyTorch's
and CuPy's documentation give), so that their own logic, the library path
passed to PyTorch, the refusal after PyTorch allocated, CuPy's
MemoryPointer and its free, is checked on every machine.
"""
import ctypes
import gc
import importlib
import logging
import sys
import types

import pytest

import gpumem
from gpumem import _lib

pytestmark = pytest.mark.usefixtures("released")


# ------------------------------------------------------------------ torch ----

def fake_torch(initialized=False, reserved=0, refuse=False):
    calls = []
    torch = types.ModuleType("torch")
    torch.cuda = types.SimpleNamespace()
    torch.cuda.is_initialized = lambda: initialized
    torch.cuda.device_count = lambda: 2
    torch.cuda.memory_reserved = lambda d: reserved if d == 0 else 0

    class CUDAPluggableAllocator:
        def __init__(self, path, alloc_fn, free_fn):
            calls.append(("allocator", path, alloc_fn, free_fn))

    def change_current_allocator(a):
        if refuse:
            raise RuntimeError("Can't swap an already initialized allocator")
        calls.append(("change", a))

    torch.cuda.memory = types.SimpleNamespace(CUDAPluggableAllocator=CUDAPluggableAllocator,
                                              change_current_allocator=change_current_allocator)
    return torch, calls


@pytest.fixture
def gt(monkeypatch):
    """gpumem.torch afresh, with whatever torch the test puts in sys.modules."""
    import gpumem.torch as gt
    monkeypatch.setattr(gt, "_installed", None)
    return gt


def test_torch_use_loads_our_entry_points(gt, monkeypatch):
    torch, calls = fake_torch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    a = gt.use()
    assert calls[0] == ("allocator", gpumem.library_path(), "gpumem_torch_malloc", "gpumem_torch_free")
    assert calls[1] == ("change", a)
    assert gt.use() is a and len(calls) == 2 and gt.in_use()
    # The names given to PyTorch are symbols of the library, with PyTorch's types.
    h = ctypes.CDLL(gpumem.library_path())
    assert h.gpumem_torch_malloc and h.gpumem_torch_free


def test_torch_use_after_pytorch_allocated(gt, monkeypatch):
    torch, calls = fake_torch(initialized=True, reserved=20 << 20)
    monkeypatch.setitem(sys.modules, "torch", torch)
    with pytest.raises(gt.AllocatorInUse) as e:
        gt.use()
    assert "already holds 20971520 bytes" in str(e.value)
    assert "before the first CUDA allocation" in str(e.value)
    assert calls == [] and not gt.in_use()


def test_torch_use_refused_by_pytorch(gt, monkeypatch):
    torch, calls = fake_torch(initialized=True, refuse=True)
    monkeypatch.setitem(sys.modules, "torch", torch)
    with pytest.raises(gt.AllocatorInUse) as e:
        gt.use()
    assert "Can't swap an already initialized allocator" in str(e.value)
    assert not gt.in_use()


def test_torch_missing(gt, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch raises ImportError
    with pytest.raises(ImportError, match="gpumem.torch needs PyTorch"):
        gt.use()


def test_real_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no GPU (CUDAPluggableAllocator needs one); tools/gpu-check's "
                    "frameworks stage trains models with it on a GPU")
    pytest.skip("runs in a fresh process on a GPU: tools/gpu-check --only frameworks")


# ------------------------------------------------------------------- cupy ----

def fake_cupy(device=1, stream=0):
    cupy = types.ModuleType("cupy")
    chosen = []

    class UnownedMemory:
        def __init__(self, ptr, size, owner, device_id=None):
            self.ptr, self.size, self.owner, self.device_id = ptr, size, owner, device_id

    class MemoryPointer:
        def __init__(self, mem, offset):
            self.mem, self.ptr = mem, mem.ptr + offset

    class OutOfMemoryError(MemoryError):
        def __init__(self, size, total, limit=0):
            super().__init__(f"Out of memory allocating {size:,} bytes (total {total:,} bytes)")

    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDevice=lambda: device, memGetInfo=lambda: (0, 1 << 30)),
        get_current_stream=lambda: types.SimpleNamespace(ptr=stream),
        UnownedMemory=UnownedMemory, MemoryPointer=MemoryPointer,
        memory=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError),
        set_allocator=chosen.append)
    cupy.get_default_memory_pool = lambda: types.SimpleNamespace(malloc="cupy-pool")
    return cupy, chosen


def test_cupy_malloc_and_free(monkeypatch):
    cupy, chosen = fake_cupy(device=1)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    import gpumem.cupy as gc_
    gc_.use()
    assert chosen == [gc_.malloc]
    mp = gc_.malloc(5000)
    assert mp.mem.device_id == 1 and mp.mem.size == 5000 and mp.ptr == mp.mem.ptr
    ctypes.memset(mp.ptr, 0x66, 5000)
    assert ctypes.string_at(mp.ptr, 5000) == b"\x66" * 5000
    assert isinstance(mp.mem.owner, gc_.Block)
    assert gpumem.stats(1)["bytes_in_use"] == 5000
    del mp  # CuPy drops its last reference: the owner frees the block
    gc.collect()
    s = gpumem.stats(1)
    assert s["bytes_in_use"] == 0 and s["frees"] == 1
    empty = gc_.malloc(0)
    assert empty.ptr == 0 and gpumem.stats(1)["allocs"] == 1
    gc_.restore()
    assert chosen[-1] == "cupy-pool"


def test_cupy_stream_and_out_of_memory(monkeypatch):
    h = _lib.lib()
    s = ctypes.c_void_p()
    _lib.check(h.gpumem_stream_create(0, ctypes.byref(s)))
    try:
        cupy, _ = fake_cupy(device=0, stream=s.value)
        monkeypatch.setitem(sys.modules, "cupy", cupy)
        import gpumem.cupy as gc_
        mp = gc_.malloc(100000)
        assert mp.mem.owner.stream == s.value and mp.mem.owner.device == 0
        assert gpumem.stats(0)["bytes_in_use"] == 100000
        del mp
        gc.collect()
        assert gpumem.stats(0)["bytes_in_use"] == 0
        with pytest.raises(MemoryError, match="Out of memory allocating"):
            gc_.malloc(1 << 50)
    finally:
        _lib.check(h.gpumem_stream_synchronize(s))
        _lib.check(h.gpumem_stream_destroy(s))


def test_cupy_block_frees_once():
    import gpumem.cupy as gc_
    p = gpumem.alloc(4096, 0)
    b = gc_.Block(p, 4096, 0, None)
    b.free()
    b.free()  # a second free (then __del__) does nothing
    del b
    gc.collect()
    assert gpumem.stats(0)["frees"] == 1


def test_real_cupy():
    cupy = pytest.importorskip("cupy")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # cupy's CUDARuntimeError without a driver
        pytest.skip(f"CuPy sees no GPU: {e}")
    if n == 0:
        pytest.skip("CuPy sees no GPU")
    pytest.skip("runs on a GPU: tools/gpu-check --only frameworks")


# ------------------------------------------------------------------ numba ----

class FakeContext:
    """What the plugin reads of Numba's context."""

    def __init__(self, device):
        self.device = types.SimpleNamespace(id=device)


@pytest.fixture
def numba_mm(monkeypatch):
    pytest.importorskip("numba")
    gn = importlib.import_module("gpumem.numba")
    if gn._cuda is None:
        pytest.skip(f"Numba without CUDA support: {gn._import_error}")
    # Numba's driver makes its logger when it initialises the CUDA driver,
    # which a machine without one never does; the pending frees log through it.
    monkeypatch.setattr(gn._driver, "_logger", logging.getLogger("numba.cuda.cudadrv.driver"),
                        raising=False)
    return gn


def test_numba_plugin_allocates_through_gpumem(numba_mm):
    gn = numba_mm
    from numba.cuda.cudadrv import driver
    mm = gn.GpumemMemoryManager(context=FakeContext(1))
    assert mm.interface_version == 1
    assert isinstance(mm, driver.HostOnlyCUDAMemoryManager)
    mm.initialize()
    assert gpumem.stats(1)["allocs"] == 0  # made at initialize, nothing allocated yet
    info = mm.get_memory_info()
    assert info.total == 1 << 30 and 0 < info.free <= info.total  # the host backend's 1 GiB devices
    assert mm.deallocations.memory_capacity == info.total
    mp = mm.memalloc(70000)
    assert isinstance(mp, driver.MemoryPointer) and mp.size == 70000
    addr = mp.device_pointer.value if hasattr(mp.device_pointer, "value") else int(mp.device_pointer)
    ctypes.memset(addr, 0x77, 70000)
    assert ctypes.string_at(addr, 70000) == b"\x77" * 70000
    assert gpumem.stats(1)["bytes_in_use"] == 70000
    del mp
    gc.collect()
    assert len(mm.deallocations) == 1  # queued, as Numba defers its frees
    assert gpumem.stats(1)["bytes_in_use"] == 70000
    mm.deallocations.clear()
    s = gpumem.stats(1)
    assert s["bytes_in_use"] == 0 and s["frees"] == 1
    with mm.defer_cleanup():
        mp = mm.memalloc(4096)
        del mp
        gc.collect()
        mm.deallocations.clear()  # deferred: nothing freed inside
        assert gpumem.stats(1)["bytes_in_use"] == 4096
    mm.reset()
    assert gpumem.stats(1)["bytes_in_use"] == 0


def test_numba_plugin_errors(numba_mm):
    gn = numba_mm
    from numba.cuda.cudadrv import driver
    mm = gn.GpumemMemoryManager(context=FakeContext(0))
    mm.initialize()
    with pytest.raises(driver.CudaAPIError) as e:
        mm.memalloc(1 << 50)
    assert "cannot allocate 1125899906842624 bytes" in str(e.value)
    assert gpumem.stats(0)["failed_allocs"] == 2  # tried again after the pending frees
    with pytest.raises(NotImplementedError, match="legacy CUDA IPC"):
        mm.get_ipc_handle(None)
    bad = gn.GpumemMemoryManager(context=FakeContext(9))
    with pytest.raises(gpumem.GpumemError, match="device 9 does not exist"):
        bad.initialize()


def test_numba_entry_points(numba_mm):
    gn = numba_mm
    assert gn._numba_memory_manager is gn.GpumemMemoryManager  # NUMBA_CUDA_MEMORY_MANAGER=gpumem.numba
    from numba.cuda.cudadrv import driver
    before = driver._memory_manager
    try:
        gn.use()  # Numba checks the interface version on a context-less instance
        assert driver._memory_manager is gn.GpumemMemoryManager
    finally:
        driver._memory_manager = before
