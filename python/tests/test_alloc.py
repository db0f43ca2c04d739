"""The C entry points through ctypes, on the host backend: bytes written and
read back, statistics per device, every bad input an error that changes
nothing, streams, release, many threads."""
import ctypes
import threading

import pytest

import gpumem
from gpumem import _lib

pytestmark = pytest.mark.usefixtures("released")
MiB = 1 << 20


def fill_and_check(ptr, size, byte):
    ctypes.memset(ptr, byte, size)
    data = ctypes.string_at(ptr, size)
    assert data == bytes([byte]) * size


def test_alloc_write_read_free():
    a = gpumem.alloc(3000, device=0)
    b = gpumem.alloc(MiB, device=0)
    fill_and_check(a, 3000, 0x11)
    fill_and_check(b, MiB, 0x22)
    assert ctypes.string_at(a, 3000) == b"\x11" * 3000  # untouched by b
    s = gpumem.stats(0)
    assert s["allocator"] == "gpumem-pool" and s["stream_ordered"]
    assert s["bytes_in_use"] == 3000 + MiB
    assert s["allocs"] == 2 and s["frees"] == 0
    assert s["bytes_reserved"] >= s["bytes_in_use"]
    gpumem.free(a, 3000, device=0)
    gpumem.free(b, MiB, device=0)
    s = gpumem.stats(0)
    assert s["bytes_in_use"] == 0 and s["frees"] == 2
    assert s["peak_bytes_in_use"] == 3000 + MiB
    assert s["peak_bytes_reserved"] >= 3000 + MiB


def test_stats_per_device():
    assert gpumem.stats() == {}
    assert gpumem.stats(1) is None
    p = gpumem.alloc(4096, device=1)
    all_stats = gpumem.stats()
    assert list(all_stats) == [1]
    assert all_stats[1]["bytes_in_use"] == 4096
    assert set(all_stats[1]) == {"allocator", "stream_ordered", "bytes_in_use", "peak_bytes_in_use",
                                 "bytes_reserved", "peak_bytes_reserved", "allocs", "frees",
                                 "failed_allocs", "largest_free"}
    gpumem.free(p, 4096, device=1)
    assert gpumem.allocator_name(1) == ("gpumem-pool", True)


@pytest.mark.parametrize("device, status, text", [
    (-1, "GPUMEM_ERR_INVALID_DEVICE", "device -1 is out of range (0..63)"),
    (64, "GPUMEM_ERR_INVALID_DEVICE", "device 64 is out of range (0..63)"),
    (5, "GPUMEM_ERR_INVALID_DEVICE", "device 5 does not exist (2 devices)"),
])
def test_bad_devices(device, status, text):
    with pytest.raises(gpumem.GpumemError) as e:
        gpumem.alloc(4096, device=device)
    assert e.value.status == status and text in str(e.value)
    assert str(e.value).startswith("gpumem_framework_alloc: ")
    assert gpumem.stats() == {}


def test_zero_and_huge_sizes():
    with pytest.raises(gpumem.GpumemError) as e:
        gpumem.alloc(0)
    assert e.value.status == "GPUMEM_ERR_INVALID_ARGUMENT" and "cannot allocate 0 bytes" in str(e.value)
    with pytest.raises(gpumem.OutOfMemory) as e:
        gpumem.alloc(1 << 50)
    assert isinstance(e.value, MemoryError) and "cannot allocate 1125899906842624 bytes" in str(e.value)
    s = gpumem.stats(0)
    assert s["failed_allocs"] == 1 and s["bytes_in_use"] == 0


def test_bad_frees_change_nothing():
    p = gpumem.alloc(MiB, device=0)
    fill_and_check(p, MiB, 0x33)
    cases = [
        ((p + 256, MiB, 0), "GPUMEM_ERR_INVALID_POINTER", "was not allocated from this pool"),
        ((p, 4096, 0), "GPUMEM_ERR_INVALID_ARGUMENT", "with size 4096"),
        ((p, MiB, 1), "GPUMEM_ERR_NOT_FOUND", "device 1 has no framework allocator"),
        ((p, MiB, 64), "GPUMEM_ERR_INVALID_DEVICE", "out of range"),
        ((0, MiB, 0), "GPUMEM_ERR_INVALID_ARGUMENT", "ptr is NULL"),
    ]
    for args, status, text in cases:
        with pytest.raises(gpumem.GpumemError) as e:
            gpumem.free(*args)
        assert e.value.status == status and text in str(e.value), args
    assert gpumem.stats(0)["bytes_in_use"] == MiB and gpumem.stats(0)["frees"] == 0
    assert ctypes.string_at(p, MiB) == b"\x33" * MiB
    gpumem.free(p, MiB, 0)
    with pytest.raises(gpumem.GpumemError) as e:
        gpumem.free(p, MiB, 0)
    assert e.value.status == "GPUMEM_ERR_DOUBLE_FREE" and "already freed" in str(e.value)


def test_torch_entry_points_through_ctypes():
    h = _lib.lib()
    h.gpumem_clear_last_error()
    assert h.gpumem_torch_malloc(0, 0, None) is None  # an empty tensor
    assert h.gpumem_last_error() == b""
    assert h.gpumem_torch_malloc(-1, 0, None) is None
    assert b"size -1 is negative" in h.gpumem_last_error()
    p = h.gpumem_torch_malloc(8192, 1, None)
    fill_and_check(p, 8192, 0x44)
    assert gpumem.stats(1)["bytes_in_use"] == 8192
    h.gpumem_torch_free(p, 8192, 0, None)  # the wrong device: logged, nothing freed
    assert b"device 0 has no framework allocator" in h.gpumem_last_error()
    assert gpumem.stats(1)["bytes_in_use"] == 8192
    h.gpumem_torch_free(p, 8192, 1, None)
    h.gpumem_torch_free(None, 0, 1, None)
    assert gpumem.stats(1)["bytes_in_use"] == 0 and gpumem.stats(1)["frees"] == 1


def test_streams():
    h = _lib.lib()
    s = ctypes.c_void_p()
    _lib.check(h.gpumem_stream_create(0, ctypes.byref(s)))
    try:
        blocks = [(gpumem.alloc(n, 0, s.value), n) for n in (100, 70000, 3 * MiB)]
        for p, n in blocks:
            fill_and_check(p, n, 0x55)
        for p, n in blocks:
            gpumem.free(p, n, 0, s.value)
        # Freed on s: reused by s at once (stream-ordered).
        again = gpumem.alloc(3 * MiB, 0, s.value)
        assert again == blocks[2][0]
        gpumem.free(again, 3 * MiB, 0, s.value)
    finally:
        _lib.check(h.gpumem_stream_synchronize(s))
        _lib.check(h.gpumem_stream_destroy(s))


def test_release_and_trim():
    p = gpumem.alloc(4096, 0)
    q = gpumem.alloc(4096, 1)
    gpumem.free(q, 4096, 1)
    _lib.lib().gpumem_stream_synchronize(None)
    gpumem.trim()
    gpumem.trim(1)
    with pytest.raises(gpumem.GpumemError) as e:
        gpumem.release()
    assert e.value.status == "GPUMEM_ERR_BUSY"
    assert "device 0:" in str(e.value) and "4096 bytes allocated" in str(e.value)
    assert list(gpumem.stats()) == [0]  # device 1's went, device 0's stays
    gpumem.free(p, 4096, 0)
    _lib.lib().gpumem_stream_synchronize(None)
    gpumem.release()
    assert gpumem.stats() == {}
    with pytest.raises(gpumem.GpumemError):
        gpumem.trim(-2)


def test_threads_share_one_allocator():
    """Eight threads allocate on a device with no allocator yet, all at once."""
    n, size, rounds = 8, 65536, 50
    start = threading.Barrier(n)
    errors, counts = [], [0] * n

    def work(i):
        try:
            start.wait()
            for r in range(rounds):
                p = gpumem.alloc(size, 1)
                ctypes.memset(p, i, size)
                if ctypes.string_at(p, size) != bytes([i]) * size:
                    errors.append(f"thread {i} round {r}: bytes changed under it")
                gpumem.free(p, size, 1)
                counts[i] += 1
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = gpumem.stats(1)
    assert s["allocs"] == s["frees"] == n * rounds == sum(counts)
    assert s["bytes_in_use"] == 0
    assert s["peak_bytes_in_use"] <= n * size
