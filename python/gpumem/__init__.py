"""gpumem: libgpumem's allocators under PyTorch, CuPy and Numba.

A pure-Python package over the C library (ctypes; nothing to compile). The
library keeps one allocator per device, of the kind ``GPUMEM_ALLOC_CONF``
describes (libgpumem's stream-ordered pool when unset), made on the first
allocation there; every framework hooked up in the process allocates from
it, and :func:`stats` reports it.

    import gpumem.torch
    gpumem.torch.use()          # before the first CUDA tensor
    ...
    print(gpumem.stats())       # {0: {'allocator': 'gpumem-pool', 'bytes_in_use': ...}}

    import gpumem.cupy
    gpumem.cupy.use()

    import gpumem.numba
    gpumem.numba.use()          # or NUMBA_CUDA_MEMORY_MANAGER=gpumem.numba

The library is found through ``GPUMEM_LIBRARY`` or the dynamic loader's
search (see :mod:`gpumem._lib`). The framework modules import their
framework when called, so ``import gpumem`` needs none of them.
"""

import ctypes

from ._lib import GpumemError, LibraryNotFound, OutOfMemory  # noqa: F401
from . import _lib

__version__ = "0.1.0"
__all__ = ["alloc", "free", "stats", "trim", "release", "allocator_name", "library_path",
           "library_version", "GpumemError", "LibraryNotFound", "OutOfMemory"]


def library_path():
    """The libgpumem.so this process uses (loads it if needed)."""
    return _lib.path()


def library_version():
    """libgpumem's version, "major.minor.patch"."""
    return _lib.lib().gpumem_version_string().decode()


def alloc(size, device=0, stream=None):
    """Allocate `size` bytes on `device` from its allocator, ordered on
    `stream` (None: the legacy default stream; an int: a cudaStream_t).
    Returns the device pointer as an int. Raises GpumemError (OutOfMemory
    when the device is full)."""
    p = ctypes.c_void_p()
    _lib.check(_lib.lib().gpumem_framework_alloc(int(device), int(size), _lib.as_stream(stream),
                                                 ctypes.byref(p)))
    return p.value


def free(ptr, size, device=0, stream=None):
    """Free `ptr` (an int from alloc) of `size` bytes on `device`, ordered on
    `stream`. Raises GpumemError for a pointer, size or device that do not
    match an allocation (nothing is freed then)."""
    _lib.check(_lib.lib().gpumem_framework_free(int(device), ctypes.c_void_p(int(ptr)), int(size),
                                                _lib.as_stream(stream)))


def allocator_name(device=0):
    """The name of `device`'s allocator (such as "gpumem-pool"), made now if
    needed, and whether it is stream-ordered: (name, stream_ordered)."""
    a = _lib.Allocator(struct_size=ctypes.sizeof(_lib.Allocator))
    _lib.check(_lib.lib().gpumem_framework_allocator(int(device), ctypes.byref(a)))
    return a.name.decode(), bool(a.flags & _lib.STREAM_ORDERED)


def _device_stats(h, device):
    s = _lib.Stats(struct_size=ctypes.sizeof(_lib.Stats))
    code = h.gpumem_framework_stats(device, ctypes.byref(s))
    if code == _lib.ERR_NOT_FOUND:
        return None
    _lib.check(code)
    a = _lib.Allocator(struct_size=ctypes.sizeof(_lib.Allocator))
    _lib.check(h.gpumem_framework_allocator(device, ctypes.byref(a)))
    out = {"allocator": a.name.decode(), "stream_ordered": bool(a.flags & _lib.STREAM_ORDERED)}
    out.update({name: int(getattr(s, name)) for name, _ in _lib.Stats._fields_ if name != "struct_size"})
    return out


def stats(device=None):
    """Statistics of the framework allocators: {device: {...}} for every
    device that has one (devices nothing was allocated on are left out), or
    the dict of one `device` (None when it has none). Keys: allocator,
    stream_ordered, bytes_in_use, peak_bytes_in_use, bytes_reserved,
    peak_bytes_reserved, allocs, frees, failed_allocs, largest_free."""
    h = _lib.lib()
    if device is not None:
        return _device_stats(h, int(device))
    out = {}
    for d in range(_lib.MAX_DEVICES):
        s = _device_stats(h, d)
        if s is not None:
            out[d] = s
    return out


def trim(device=None):
    """Give cached memory back to the device(s) (None: all)."""
    _lib.check(_lib.lib().gpumem_framework_trim(-1 if device is None else int(device)))


def release():
    """Destroy every framework allocator that has nothing allocated (the
    next allocation makes a new one, reading GPUMEM_ALLOC_CONF again).
    Raises GpumemError (BUSY) naming a device that still has blocks."""
    _lib.check(_lib.lib().gpumem_framework_release())
