"""pytest setup: the package from this source tree, the host backend.

The tests drive the libgpumem.so named by GPUMEM_LIBRARY (ctest sets it to
the build's library) on the host backend, whose device memory is ordinary
host memory that the tests read and write through ctypes. Without
GPUMEM_LIBRARY they look for the library like the package does.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # python/, holding the gpumem package
os.environ.setdefault("GPUMEM_BACKEND", "host")
os.environ.setdefault("GPUMEM_LOG", "off")  # the bad frees below log errors on purpose

import pytest  # noqa: E402

import gpumem  # noqa: E402


@pytest.fixture
def released():
    """Each test starts and ends with no framework allocator (fresh statistics)."""
    gpumem.release()
    yield
    gpumem._lib.lib().gpumem_stream_synchronize(None)
    gpumem.release()
