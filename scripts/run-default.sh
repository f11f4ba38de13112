#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds dsv4 and runs `dsv4 run` on the built-in default
# model: the small V4 trained by scripts/train-default.sh, shipped in assets/default-model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV4_BUILD_TESTS=OFF -DDSV4_BUILD_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc)" --target dsv4
./build/dsv4 run -p "${DSV4_PROMPT:-Hello! Who are you?}" -n "${DSV4_MAX_TOKENS:-256}" --temp "${DSV4_TEMP:-0}" --stats
