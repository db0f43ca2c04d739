"""PyTorch on libgpumem, through CUDAPluggableAllocator.

    import gpumem.torch
    gpumem.torch.use()            # first thing, before any CUDA tensor
    model = Model().cuda()        # every CUDA tensor now comes from libgpumem

PyTorch loads the two C entry points of libgpumem, ``gpumem_torch_malloc``
and ``gpumem_torch_free`` (``void *f(ssize_t size, int device, cudaStream_t
stream)`` and ``void g(void *ptr, ssize_t size, int device, cudaStream_t
stream)``), from the same libgpumem.so this package loaded, and calls them
for every CUDA allocation. libgpumem serves each device from one allocator,
chosen by GPUMEM_ALLOC_CONF (its stream-ordered pool by default), so
``gpumem.stats()`` shows what the model holds.

When. PyTorch cannot swap an allocator that has already allocated: call
:func:`use` before the first CUDA tensor of the process (right after
``import torch`` is best). :func:`use` checks this and raises
:class:`AllocatorInUse` when PyTorch's caching allocator already holds
memory. After :func:`use`, PyTorch's own statistics
(``torch.cuda.memory_reserved`` and friends) no longer describe the memory:
read ``gpumem.stats()`` instead. ``torch.cuda.empty_cache()`` has no effect
on libgpumem; ``gpumem.trim()`` gives cached memory back.

Limits that are PyTorch's: a pluggable allocator does not support
``Tensor.record_stream`` or CUDA graph memory pools.
"""

from . import _lib

_installed = None  # the CUDAPluggableAllocator in use, once use() succeeded


class AllocatorInUse(RuntimeError):
    """PyTorch already allocated CUDA memory through another allocator."""


def _torch():
    return _lib.require("torch", "gpumem.torch", "PyTorch")


def _reserved_elsewhere(torch):
    """Bytes PyTorch's own caching allocator holds (0 if CUDA is not yet
    initialised, or when it cannot tell)."""
    if not torch.cuda.is_initialized():
        return 0
    total = 0
    try:
        for d in range(torch.cuda.device_count()):
            total += torch.cuda.memory_reserved(d)
    except RuntimeError:  # not the native allocator any more: it cannot tell
        return 0
    return total


def use():
    """Make libgpumem PyTorch's CUDA allocator for this process; returns the
    torch.cuda.memory.CUDAPluggableAllocator. Calling it again returns the
    same one. Raises AllocatorInUse when PyTorch has already allocated CUDA
    memory (call it before the first CUDA tensor), ImportError without
    PyTorch, gpumem.LibraryNotFound without libgpumem."""
    global _installed
    if _installed is not None:
        return _installed
    torch = _torch()
    path = _lib.path()
    held = _reserved_elsewhere(torch)
    if held:
        raise AllocatorInUse(
            f"PyTorch's caching allocator already holds {held} bytes: gpumem.torch.use() must be "
            "called before the first CUDA allocation of the process (right after import torch)")
    allocator = torch.cuda.memory.CUDAPluggableAllocator(path, "gpumem_torch_malloc", "gpumem_torch_free")
    try:
        torch.cuda.memory.change_current_allocator(allocator)
    except RuntimeError as e:
        raise AllocatorInUse(
            "PyTorch refused to change its CUDA allocator (it is already initialised): call "
            f"gpumem.torch.use() before the first CUDA allocation of the process ({e})") from e
    _installed = allocator
    return allocator


def in_use():
    """Whether use() has made libgpumem PyTorch's allocator."""
    return _installed is not None
