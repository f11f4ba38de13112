#!/usr/bin/env bash
# dsv4 run --spec: greedy output with MTP speculation (--spec mtp, drafts 1 and 3) is the
# output of --spec none, and --stats reports the drafted / accepted tokens.
# Usage: spec_cli_test.sh DSV4_BIN MODEL_DIR
set -euo pipefail
BIN="$1"
MODEL="$2"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
common=(run -m "$MODEL" -p "Write a haiku about snow." --temp 0 -n 24 --think none -t 1)
"$BIN" "${common[@]}" --spec none > "$T/none.out" 2> "$T/none.err"
for d in 1 3; do
  "$BIN" "${common[@]}" --spec mtp --draft "$d" --stats > "$T/mtp$d.out" 2> "$T/mtp$d.err"
  if ! cmp -s "$T/none.out" "$T/mtp$d.out"; then
    echo "FAIL: --spec mtp --draft $d changed the greedy output"
    diff "$T/none.out" "$T/mtp$d.out" || true
    exit 1
  fi
  grep -q '^\[speculative: [0-9]* passes, drafted [1-9][0-9]*, accepted [0-9]*' "$T/mtp$d.err" ||
    { echo "FAIL: --stats has no speculative line"; cat "$T/mtp$d.err"; exit 1; }
done
if "$BIN" "${common[@]}" --spec mtp --draft 9 > /dev/null 2> "$T/bad.err"; then
  echo "FAIL: --draft 9 accepted"
  exit 1
fi
grep -q -- "--draft" "$T/bad.err" || { echo "FAIL: no message naming --draft"; cat "$T/bad.err"; exit 1; }
echo PASS
