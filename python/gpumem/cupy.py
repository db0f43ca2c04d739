"""CuPy on libgpumem.

    import gpumem.cupy
    gpumem.cupy.use()             # cupy.cuda.set_allocator(gpumem.cupy.malloc)

CuPy asks its allocator for a ``MemoryPointer``; :func:`malloc` allocates
on CuPy's current device and current stream through libgpumem's allocator
for that device, and wraps the block in an ``UnownedMemory`` whose owner, a
small :class:`Block`, frees it when CuPy drops the last reference. The free
is ordered on the stream the block was allocated on, as CuPy's own pool
does. Unlike CuPy's pool, libgpumem's pool is stream-ordered in CUDA's
sense (cudaFreeAsync rules), and the arena waits for the stream at free.

:func:`use` may be called at any time: arrays allocated before it keep
their memory from CuPy's pool; ``cupy.get_default_memory_pool().free_all_blocks()``
gives that back.
"""

import threading

from . import _lib

_lock = threading.Lock()


class Block:
    """One libgpumem allocation: frees itself (once) when collected."""

    __slots__ = ("ptr", "size", "device", "stream", "_freed")

    def __init__(self, ptr, size, device, stream):
        self.ptr, self.size, self.device, self.stream = ptr, size, device, stream
        self._freed = False

    def free(self):
        if self._freed or not self.ptr:
            return
        self._freed = True
        from . import free
        free(self.ptr, self.size, self.device, self.stream)

    def __del__(self):
        try:
            self.free()
        except Exception as e:  # a finaliser cannot raise; the library logged it
            import sys
            print(f"gpumem: freeing {self.size} bytes at {self.ptr:#x} on device {self.device}: {e}",
                  file=sys.stderr)


def _cupy():
    return _lib.require("cupy", "gpumem.cupy", "CuPy")


def malloc(size):
    """CuPy's allocator interface: a cupy.cuda.MemoryPointer to `size`
    bytes on the current device, ordered on the current stream. Raises
    cupy.cuda.memory.OutOfMemoryError when the device is full."""
    cupy = _cupy()
    from . import alloc
    device = cupy.cuda.runtime.getDevice()
    if size == 0:
        return cupy.cuda.MemoryPointer(cupy.cuda.UnownedMemory(0, 0, None, device), 0)
    stream = cupy.cuda.get_current_stream().ptr
    try:
        ptr = alloc(size, device, stream)
    except _lib.OutOfMemory as e:
        total = cupy.cuda.runtime.memGetInfo()[1]
        raise cupy.cuda.memory.OutOfMemoryError(size, total) from e
    block = Block(ptr, size, device, stream)
    mem = cupy.cuda.UnownedMemory(ptr, size, block, device)
    return cupy.cuda.MemoryPointer(mem, 0)


def use():
    """Make libgpumem CuPy's allocator in this thread and every thread that
    has not chosen its own (cupy.cuda.set_allocator)."""
    cupy = _cupy()
    _lib.lib()  # fail now, not at the first allocation, when libgpumem is missing
    with _lock:
        cupy.cuda.set_allocator(malloc)


def restore():
    """Give CuPy its default memory pool back."""
    cupy = _cupy()
    cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
