"""Numba on libgpumem: an External Memory Management (EMM) plugin.

    import gpumem.numba
    gpumem.numba.use()            # numba.cuda.set_memory_manager(GpumemMemoryManager)

or, without changing the program, ``NUMBA_CUDA_MEMORY_MANAGER=gpumem.numba``
(Numba imports this module and takes ``_numba_memory_manager``). Either way
it must happen before Numba creates its CUDA context (the first kernel or
device array).

Device memory (``cuda.device_array``, ``cuda.to_device``, ...) comes from
libgpumem's allocator of the context's device; host memory (pinned, mapped)
stays Numba's own (HostOnlyCUDAMemoryManager). Numba's interface has no
stream for an allocation, so blocks are allocated and freed on the legacy
default stream, which waits for the work of every other blocking stream;
frees are queued in Numba's pending deallocations and honour
``numba.cuda.defer_cleanup()``.

IPC handles: legacy CUDA IPC does not work on memory from a CUDA pool or
the VMM API, so :meth:`GpumemMemoryManager.get_ipc_handle` raises; share
through libgpumem's POSIX-fd handles (pool and buffer export) instead.
"""

import ctypes

from . import _lib

try:
    from numba import cuda as _cuda
    from numba.cuda.cudadrv import driver as _driver
except ImportError as e:  # the module imports without Numba, the class needs it
    _cuda, _driver, _import_error = None, None, e
else:
    _import_error = None


def _base():
    if _cuda is None:
        return object
    return _cuda.HostOnlyCUDAMemoryManager


def _device_pointer(value):
    """A device pointer in the type Numba's binding of the driver uses."""
    if getattr(_driver, "USE_NV_BINDING", False):
        return _driver.binding.CUdeviceptr(value)
    return ctypes.c_uint64(value)


class GpumemMemoryManager(_base()):
    """Numba's device allocations through libgpumem (interface version 1)."""

    def __init__(self, *args, **kwargs):
        if _cuda is None:
            raise ImportError(f"gpumem.numba needs Numba with CUDA support ({_import_error})")
        super().__init__(*args, **kwargs)
        self._device = None

    @property
    def device(self):
        """The ordinal of the context's device."""
        if self._device is None:
            self._device = int(self.context.device.id)
        return self._device

    def initialize(self):
        """Load libgpumem, make the device's allocator now (so a bad
        GPUMEM_ALLOC_CONF shows at context creation) and size Numba's
        pending deallocations by the device's memory."""
        _lib.lib()
        from . import allocator_name
        allocator_name(self.device)
        self.deallocations.memory_capacity = self.get_memory_info().total

    def memalloc(self, size):
        """A MemoryPointer to `size` bytes of device memory."""
        from . import alloc
        device = self.device
        try:
            ptr = alloc(size, device, None)
        except _lib.OutOfMemory:
            # As Numba's own manager does: free what is pending, try once more.
            self.deallocations.clear()
            try:
                ptr = alloc(size, device, None)
            except _lib.OutOfMemory as e:
                raise _driver.CudaAPIError(2, f"gpumem: {e}") from e  # CUDA_ERROR_OUT_OF_MEMORY
        return _driver.MemoryPointer(self.context, _device_pointer(ptr), size,
                                     finalizer=self._finalizer(ptr, size, device))

    def _finalizer(self, ptr, size, device):
        deallocations = self.deallocations

        def release(handle):
            from . import free
            free(handle[0], handle[1], handle[2], None)

        def finalize():
            deallocations.add_item(release, (ptr, size, device), size)

        return finalize

    def get_memory_info(self):
        """Free and total memory of the device (cudaMemGetInfo's figures)."""
        free_b, total = ctypes.c_size_t(), ctypes.c_size_t()
        _lib.check(_lib.lib().gpumem_device_mem_info(self.device, ctypes.byref(free_b),
                                                     ctypes.byref(total)))
        return _driver.MemoryInfo(free=free_b.value, total=total.value)

    def get_ipc_handle(self, memory):
        raise NotImplementedError(
            "gpumem.numba: legacy CUDA IPC (cuIpcGetMemHandle) does not work on memory from a CUDA "
            "pool or the VMM API; share it through libgpumem's POSIX-fd export instead")

    def reset(self):
        """Free what Numba still has pending, and its host allocations."""
        super().reset()

    @property
    def interface_version(self):
        return 1


# What NUMBA_CUDA_MEMORY_MANAGER=gpumem.numba makes Numba use.
_numba_memory_manager = GpumemMemoryManager


def use():
    """numba.cuda.set_memory_manager(GpumemMemoryManager): before Numba's
    CUDA context exists."""
    if _cuda is None:
        raise ImportError(f"gpumem.numba needs Numba with CUDA support ({_import_error})")
    _lib.lib()
    _cuda.set_memory_manager(GpumemMemoryManager)
