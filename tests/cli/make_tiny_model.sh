#!/usr/bin/env bash
# ctest fixture: the `tiny` preset model (seed 0, V4 tokenizer) shared by the CLI tests.
set -euo pipefail
BIN=$1; DIR=$2
# A model made before the tiny preset became long-context (4096 positions) is rebuilt.
if [ -f "$DIR/config.json" ]; then
  grep -q '"max_position_embeddings": *1048576' "$DIR/config.json" && exit 0
  rm -rf "$DIR"
fi
mkdir -p "$(dirname "$DIR")"
TMP="$DIR.tmp.$$"
rm -rf "$TMP"
"$BIN" init --preset tiny --seed 0 --out "$TMP" >/dev/null
mv -T "$TMP" "$DIR" 2>/dev/null || rm -rf "$TMP"
test -f "$DIR/config.json"
