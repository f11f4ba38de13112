#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds dsv4, and runs the whole test suite:
#   1. Release build + every ctest test,
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build running the tests
#      labelled `asan` (corrupt-input, parser and fuzz-style tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --with-test-oracles
JOBS=$(nproc)

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV4_BUILD_TESTS=ON -DDSV4_BUILD_BENCH=ON >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure --no-tests=error -j "$JOBS")

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSV4_SANITIZE=ON -DDSV4_BUILD_TESTS=ON -DDSV4_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$JOBS" --target dsv4_asan_tests
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure --no-tests=error -j "$JOBS" -L asan)
