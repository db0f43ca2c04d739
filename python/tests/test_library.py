"""Finding libgpumem.so: GPUMEM_LIBRARY, the loader's search, the errors."""
import ctypes
import ctypes.util
import os
import re
import subprocess
import sys

import pytest

import gpumem
from gpumem import _lib

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_loaded_path_is_the_real_file():
    path = gpumem.library_path()
    assert os.path.isabs(path) and os.path.isfile(path)
    assert os.path.basename(path).startswith("libgpumem.so")
    assert path == os.path.realpath(path)
    if os.environ.get("GPUMEM_LIBRARY"):
        assert path == os.path.realpath(os.environ["GPUMEM_LIBRARY"])
    assert gpumem.library_version().count(".") == 2


def test_env_file_and_directory():
    path = gpumem.library_path()
    h, got = _lib.load({"GPUMEM_LIBRARY": path})
    assert got == path and h.gpumem_framework_alloc is not None
    d = os.path.dirname(path)
    if os.path.exists(os.path.join(d, "libgpumem.so")):
        _, got = _lib.load({"GPUMEM_LIBRARY": d})
        assert got == path


def test_env_wrong_path_is_the_only_place_tried(tmp_path):
    missing = str(tmp_path / "nope" / "libgpumem.so")
    with pytest.raises(gpumem.LibraryNotFound) as e:
        _lib.load({"GPUMEM_LIBRARY": missing})
    text = str(e.value)
    assert f"GPUMEM_LIBRARY={missing}" in text
    assert "cannot open shared object file" in text
    assert "dynamic loader" not in text  # no silent fallback to another copy
    assert "check GPUMEM_LIBRARY" in text
    assert isinstance(e.value, OSError)


def test_not_libgpumem():
    libc = ctypes.util.find_library("c")
    with pytest.raises(gpumem.LibraryNotFound) as e:
        _lib.load({"GPUMEM_LIBRARY": libc})
    assert "has no gpumem_framework_alloc" in str(e.value)


def test_nothing_found_lists_every_place(tmp_path):
    """In a process where nothing can find it: the message lists the loader's
    names, find_library, and how to fix it; import gpumem itself works."""
    code = ("import gpumem\n"
            "try:\n"
            "    gpumem.stats()\n"
            "except gpumem.LibraryNotFound as e:\n"
            "    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GPUMEM_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = PYTHON_DIR
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60)
    if "cannot load libgpumem" not in out.stdout:
        pytest.skip("libgpumem is installed where the loader finds it: " + out.stdout + out.stderr)
    assert "the dynamic loader's search for libgpumem.so:" in out.stdout
    assert "the dynamic loader's search for libgpumem.so.0:" in out.stdout
    assert "ctypes.util.find_library('gpumem'): nothing found" in out.stdout
    assert "set GPUMEM_LIBRARY to the libgpumem.so" in out.stdout


def test_as_stream():
    assert _lib.as_stream(None) is None
    assert _lib.as_stream(0) is None
    assert _lib.as_stream(0x1234).value == 0x1234
    p = ctypes.c_void_p(8)
    assert _lib.as_stream(p) is p


def test_pip_install(tmp_path):
    """`pip install ./python` works without a compiler or a network: the
    package installs from a copy of the source (so the tree stays clean)
    into a target directory, and the installed copy finds the library."""
    import importlib.util
    import shutil
    for needed in ("pip", "setuptools"):  # looked up, not imported (setuptools patches distutils)
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} is not installed for {sys.executable}")
    # Offline, an older setuptools (< 70.1) builds wheels only with the wheel package.
    probe = subprocess.run([sys.executable, "-c", "import setuptools; print(setuptools.__version__)"],
                           capture_output=True, text=True, timeout=60)
    version = tuple(int(x) for x in re.findall(r"\d+", probe.stdout)[:2]) or (0, 0)
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        pytest.skip(f"setuptools {probe.stdout.strip()} without the wheel package cannot build offline "
                    "(pip install ./python with network access gets a newer setuptools)")
    src = tmp_path / "src"
    shutil.copytree(PYTHON_DIR, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build",
                                                                    "*.egg-info"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation",
                        "--no-deps", "--no-index", "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "gpumem" / "__init__.py").is_file()
    assert (target / "gpumem" / "numba.py").is_file()
    code = ("import gpumem, sys\n"
            "assert gpumem.__file__.startswith(sys.argv[1]), gpumem.__file__\n"
            "p = gpumem.alloc(4096, 0)\n"
            "print(gpumem.stats(0)['bytes_in_use'])\n"
            "gpumem.free(p, 4096, 0)\n")
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-c", code, str(target)], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "4096"
