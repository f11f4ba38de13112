#!/usr/bin/env bash
# Installs everything dsv4 needs to build and test on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libpcre2-dev libhwy-dev libcli11-dev libfmt-dev
  libcpp-httplib-dev libedit-dev zlib1g-dev libexpat1-dev
  python3 tmux
  libtorch-dev libgloo-dev libopenblas0-openmp libtcmalloc-minimal4
  chromium
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js + npm run the test oracles (HF tokenizers binding, openai client).
# Some images ship a newer nodejs that bundles npm; Debian's npm package would conflict.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Test oracles (only with --with-test-oracles, as scripts/test.sh passes): HF tokenizers (Rust,
# via its Node binding) for the tokenizer cross-check and benchmark, and the official openai /
# @anthropic-ai/sdk clients for the dsv4 serve tests, and puppeteer-core (drives Debian's chromium
# in the web page test), pinned by tests/oracle/package-lock.json.
# Reinstalled when the lock file changes
# (a copy of the lock file used for the install is kept in node_modules as a stamp).
[ "${1:-}" = "--with-test-oracles" ] || exit 0
ORACLE_DIR="$(cd "$(dirname "$0")/.." && pwd)/tests/oracle"
if ! cmp -s "$ORACLE_DIR/package-lock.json" "$ORACLE_DIR/node_modules/.dsv4-installed-lock.json"; then
  (cd "$ORACLE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$ORACLE_DIR/package-lock.json" "$ORACLE_DIR/node_modules/.dsv4-installed-lock.json"
fi
