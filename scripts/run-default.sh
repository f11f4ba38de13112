#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds dsv4 and runs it on the built-in default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSV4_BUILD_TESTS=OFF >/dev/null
cmake --build build -j "$(nproc)" --target dsv4
# Until the generation engine lands, the main job validates the bundled golden checkpoint.
./build/dsv4 check --model tests/data/tiny-a/checkpoint
