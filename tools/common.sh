# tools/common.sh: shared by tools/bench and tools/test (sourced, not run).
# Finds or installs what a build needs on a Debian machine that has the CUDA
# toolkit: as root, missing Debian packages are installed; otherwise the exact
# apt-get line is printed and the script stops.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=$(nproc 2>/dev/null || echo 2)

# command:package pairs that the build and the tests use
GPUMEM_DEPS=(cmake:cmake cc:gcc make:make pkg-config:pkg-config readelf:binutils
  gzip:gzip python3:python3 doxygen:doxygen
  mpiexec:openmpi-bin gfortran:gfortran)
# (MPI, with libopenmpi-dev below: examples/06_mpi_node and its test; gfortran: the Fortran module,
# fortran/, and examples/07_fortran.f90. Both are optional to a user's build,
# which leaves them out with a message, but CI must run them.)
# and, checked by file: libcmocka-dev (the tests), zlib1g-dev (gpumem-bench's
# gzip traces); libmimalloc2.0 is optional (want_packages)

# install_packages WHY PKG...: as root, apt-get install them (exit 1 when that
# fails); otherwise print "WHY; run:" and the exact apt-get line, and exit 1.
install_packages() {
  local why=$1
  shift
  [ $# -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "gpumem: installing $*" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq "$@" >/dev/null || {
      echo "gpumem: apt-get install $* failed" >&2
      exit 1
    }
  else
    echo "gpumem: $why; run:" >&2
    echo "  sudo apt-get install -y $*" >&2
    exit 1
  fi
}

need_packages() {
  local missing=() pair cmd pkg
  for pair in "${GPUMEM_DEPS[@]}"; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ! [ -f /usr/include/cmocka.h ] && ! dpkg -s libcmocka-dev >/dev/null 2>&1; then
    missing+=(libcmocka-dev)
  fi
  # mpi.h: examples/06_mpi_node (the command check above covers openmpi-bin only)
  if ! dpkg -s libopenmpi-dev >/dev/null 2>&1; then
    missing+=(libopenmpi-dev)
  fi
  # zlib: gpumem-bench reads gzip traces with it
  if ! [ -f /usr/include/zlib.h ] && ! dpkg -s zlib1g-dev >/dev/null 2>&1; then
    missing+=(zlib1g-dev)
  fi
  want_packages libmimalloc2.0
  install_packages "missing packages" "${missing[@]}"
}

# Install Debian packages that only widen what is measured, when apt can;
# never fatal (gpumem-bench leaves out what is missing and says why).
#   libmimalloc2.0: the `mimalloc` yardstick row of gpumem-bench pairs
want_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "gpumem: installing ${missing[*]} (optional)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
      echo "gpumem: could not install ${missing[*]}; gpumem-bench runs without it" >&2
  else
    echo "gpumem: optional, for gpumem-bench: sudo apt-get install -y ${missing[*]}" >&2
  fi
}

# Install a Python module with pip if it is missing; never fatal (the tests
# that need it skip themselves without it).
need_python_module() {
  python3 -c "import $1" 2>/dev/null && return 0
  echo "gpumem: installing the Python module $1 (pip)" >&2
  python3 -m pip install -q "$1" >/dev/null 2>&1 || echo "gpumem: pip could not install $1; tests that need it are skipped" >&2
}

# clang and its libFuzzer runtime, for `tools/test fuzz` only (Debian: clang
# and libclang-rt-<major>-dev; bookworm's clang is 14).
need_fuzz_packages() {
  local missing=() major
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  major=${major:-14}
  if ! [ -f "$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ] &&
    ! dpkg -s "libclang-rt-$major-dev" >/dev/null 2>&1; then
    missing+=("libclang-rt-$major-dev")
  fi
  install_packages "the fuzz targets need clang and libFuzzer" "${missing[@]}"
}

need_cuda_toolkit() {
  if command -v nvcc >/dev/null 2>&1 || [ -f /usr/local/cuda/include/cuda.h ]; then
    return 0
  fi
  echo "gpumem: the CUDA toolkit (12.5 or newer: headers and libcudart) was not found." >&2
  echo "  Install it from NVIDIA's Debian repository (e.g. apt-get install cuda-toolkit-13-0)" >&2
  echo "  and put its bin/ on PATH. No GPU or driver is needed to build and test." >&2
  exit 1
}

# configure_and_build DIR [cmake args...]
configure_and_build() {
  local dir=$1
  shift
  cmake -S "$ROOT" -B "$dir" "$@" >"$dir.configure.log" 2>&1 || {
    cat "$dir.configure.log" >&2
    exit 1
  }
  cmake --build "$dir" -j"$JOBS" >"$dir.build.log" 2>&1 || {
    grep -E 'error|Error' "$dir.build.log" | head -40 >&2
    exit 1
  }
}
