"""Finding and calling libgpumem.so through ctypes.

The package ships no compiled code: it loads the libgpumem.so that the C
build made or installed. Where it looks, in order:

1. ``GPUMEM_LIBRARY``: a path to the library file (or to a directory that
   holds ``libgpumem.so``). When it is set, it is the only place tried, so a
   wrong path is an error rather than a silent load of another copy.
2. The dynamic loader's own search for ``libgpumem.so`` and
   ``libgpumem.so.0`` (``LD_LIBRARY_PATH``, the ld.so cache, the system
   directories), then ``ctypes.util.find_library("gpumem")``.

When nothing loads, :class:`LibraryNotFound` lists every place tried and why
each failed. The library is loaded once per process (:func:`lib`), and
:func:`path` gives the file that was loaded: PyTorch's
CUDAPluggableAllocator opens the library again by that path, and gets the
same copy (one set of allocators per process).

Every C function used here gets its argument and result types declared in
:func:`_declare`; calls that fail raise :class:`GpumemError` with the
library's own sentence (``gpumem_last_error``).
"""

import ctypes
import ctypes.util
import os
import importlib
import threading

ENV = "GPUMEM_LIBRARY"
NAMES = ("libgpumem.so", "libgpumem.so.0")

# Status codes of include/gpumem/error.h that the package tells apart.
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_INVALID_DEVICE = 3
ERR_OUT_OF_MEMORY = 4
ERR_NOT_FOUND = 20

MAX_DEVICES = 64  # GPUMEM_MAX_DEVICES


class LibraryNotFound(OSError):
    """libgpumem.so could not be loaded; the message lists what was tried."""


class GpumemError(RuntimeError):
    """A libgpumem call failed: ``status`` is the code's name (such as
    ``GPUMEM_ERR_INVALID_DEVICE``), ``code`` its number, the message the
    library's sentence."""

    def __init__(self, code, name, message):
        super().__init__(message)
        self.code, self.status = code, name


class OutOfMemory(GpumemError, MemoryError):
    """GPUMEM_ERR_OUT_OF_MEMORY: the device (or the allocator's limit) is full."""


class Stats(ctypes.Structure):
    """gpumem_stats (include/gpumem/stats.h)."""
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("bytes_in_use", ctypes.c_size_t),
                ("peak_bytes_in_use", ctypes.c_size_t),
                ("bytes_reserved", ctypes.c_size_t),
                ("peak_bytes_reserved", ctypes.c_size_t),
                ("allocs", ctypes.c_uint64),
                ("frees", ctypes.c_uint64),
                ("failed_allocs", ctypes.c_uint64),
                ("largest_free", ctypes.c_size_t)]


class Allocator(ctypes.Structure):
    """gpumem_allocator (include/gpumem/allocator.h): only read here."""
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("name", ctypes.c_char_p),
                ("device", ctypes.c_int),
                ("ctx", ctypes.c_void_p),
                ("alloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p),
                ("stats", ctypes.c_void_p),
                ("trim", ctypes.c_void_p),
                ("destroy", ctypes.c_void_p),
                ("flags", ctypes.c_uint)]


STREAM_ORDERED = 1  # GPUMEM_ALLOCATOR_STREAM_ORDERED

_lock = threading.Lock()
_lib = None
_path = None


def _candidates(environ):
    """(description, what to pass to CDLL) in the order tried."""
    value = environ.get(ENV)
    if value:
        if os.path.isdir(value):
            return [(f"{ENV}={value} (a directory)", os.path.join(value, NAMES[0]))]
        return [(f"{ENV}={value}", value)]
    out = [(f"the dynamic loader's search for {n}", n) for n in NAMES]
    found = ctypes.util.find_library("gpumem")
    out.append(("ctypes.util.find_library('gpumem')", found))
    return out


def _loaded_path(handle, symbol):
    """The file the dynamic loader loaded `symbol` from (dladdr)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        libc = ctypes.CDLL(None)
        dladdr = libc.dladdr
    except (OSError, AttributeError):
        return None
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    dladdr.restype = ctypes.c_int
    info = DlInfo()
    if dladdr(ctypes.cast(getattr(handle, symbol), ctypes.c_void_p), ctypes.byref(info)) == 0:
        return None
    return os.path.realpath(info.dli_fname.decode()) if info.dli_fname else None


def load(environ=None):
    """Load libgpumem and return (CDLL, path); raises LibraryNotFound with
    every place tried. Does not cache (see lib())."""
    environ = os.environ if environ is None else environ
    tried = []
    for what, arg in _candidates(environ):
        if arg is None:
            tried.append(f"{what}: nothing found")
            continue
        try:
            handle = ctypes.CDLL(arg)
        except OSError as e:
            tried.append(f"{what}: {e}")
            continue
        if not hasattr(handle, "gpumem_framework_alloc"):
            tried.append(f"{what}: loaded, but it has no gpumem_framework_alloc (not libgpumem, "
                         "or one older than the framework hooks)")
            continue
        _declare(handle)
        return handle, _loaded_path(handle, "gpumem_framework_alloc") or arg
    hint = (f"set {ENV} to the libgpumem.so a build made (build/<dir>/libgpumem.so) or installed"
            if not environ.get(ENV) else f"check {ENV}")
    raise LibraryNotFound("cannot load libgpumem; tried:\n  " + "\n  ".join(tried) + f"\n{hint}")


def lib():
    """The process's libgpumem (loaded on first use)."""
    global _lib, _path
    if _lib is None:
        with _lock:
            if _lib is None:
                _lib, _path = load()
    return _lib


def path():
    """The path of the loaded libgpumem.so (loads it if needed)."""
    lib()
    return _path


def _declare(h):
    P = ctypes.c_void_p
    sig = {
        "gpumem_framework_alloc": (ctypes.c_int, [ctypes.c_int, ctypes.c_size_t, P, ctypes.POINTER(P)]),
        "gpumem_framework_free": (ctypes.c_int, [ctypes.c_int, P, ctypes.c_size_t, P]),
        "gpumem_framework_stats": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(Stats)]),
        "gpumem_framework_allocator": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(Allocator)]),
        "gpumem_framework_trim": (ctypes.c_int, [ctypes.c_int]),
        "gpumem_framework_release": (ctypes.c_int, []),
        "gpumem_torch_malloc": (P, [ctypes.c_ssize_t, ctypes.c_int, P]),
        "gpumem_torch_free": (None, [P, ctypes.c_ssize_t, ctypes.c_int, P]),
        "gpumem_last_error": (ctypes.c_char_p, []),
        "gpumem_clear_last_error": (None, []),
        "gpumem_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "gpumem_version_string": (ctypes.c_char_p, []),
        "gpumem_backend_name": (ctypes.c_char_p, []),
        "gpumem_device_count": (ctypes.c_int, [ctypes.POINTER(ctypes.c_int)]),
        "gpumem_device_mem_info": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(ctypes.c_size_t),
                                                  ctypes.POINTER(ctypes.c_size_t)]),
        "gpumem_stream_create": (ctypes.c_int, [ctypes.c_int, ctypes.POINTER(P)]),
        "gpumem_stream_destroy": (ctypes.c_int, [P]),
        "gpumem_stream_synchronize": (ctypes.c_int, [P]),
        "gpumem_finalize": (ctypes.c_int, []),
    }
    for name, (res, args) in sig.items():
        f = getattr(h, name)
        f.restype, f.argtypes = res, args


def check(code):
    """Raise the GpumemError of a failed call (code != 0)."""
    if code == OK:
        return
    h = lib()
    name = (h.gpumem_status_name(code) or b"?").decode()
    message = (h.gpumem_last_error() or b"").decode("utf-8", "replace") or name
    cls = OutOfMemory if code == ERR_OUT_OF_MEMORY else GpumemError
    raise cls(code, name, message)


def as_stream(stream):
    """A stream as the C side takes it: None or 0 (the legacy default
    stream), an int (cudaStream_t's value, as torch's ``cuda_stream`` and
    CuPy's ``ptr`` give it), or a ctypes pointer."""
    if stream is None:
        return None
    if isinstance(stream, ctypes.c_void_p):
        return stream
    return ctypes.c_void_p(int(stream)) if int(stream) else None


def require(module, user, what):
    """Import `module` for the gpumem submodule `user`, or raise an
    ImportError saying that `user` needs `what` and why the import failed."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError("%s needs %s (import %s failed: %s)" % (user, what, module, e)) from e
