#!/bin/sh
# Run a program on the CUDA backend for ctest. Exit status 2 means "no
# device": it becomes a skip (77), or stays a failure when
# GPUMEM_TEST_REQUIRE_GPU=1 (set on GPU runs).
"$@"
rc=$?
if [ "$rc" -eq 2 ] && [ "${GPUMEM_TEST_REQUIRE_GPU:-0}" != 1 ]; then
  echo "skipped: no CUDA device here (GPUMEM_TEST_REQUIRE_GPU=1 makes this a failure)"
  exit 77
fi
exit "$rc"
