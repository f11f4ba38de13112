#!/usr/bin/env bash
# dsv4 eval end to end on the tiny random model: locally (-m) and through a real `dsv4 serve`
# on a free port (--endpoint), then against the stopped server (a clear error). Random
# weights: only the report's shape is checked, not the accuracy.
# usage: eval_cli_test.sh DSV4_BIN MODEL_DIR TASKS.jsonl
set -euo pipefail
BIN=$1 MODEL=$2 TASKS=$3
TMP=$(mktemp -d)
PID=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

check_report() {  # report.json expected_backend
  python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["dsv4_eval_report"] == 1 and r["backend"] == sys.argv[2], r
assert r["modes"] == ["non-think", "think-high", "think-max"], r["modes"]
res = r["results"]
assert [(x["suite"], x["mode"]) for x in res] == [(s, m) for s in ("tools", "math") for m in r["modes"]], res
assert [x["n"] for x in res] == [1, 1, 1, 2, 2, 2], res
for x in res:
    assert x["errors"] == 0, x
    assert 0 <= x["ci95"][0] <= x["accuracy"] <= x["ci95"][1] <= 1, x
    assert x["mean_completion_tokens"] > 0, x
assert [t["n"] for t in r["totals"]] == [3, 3, 3]
assert len(r["tasks"]) == 9 and all(t["completion_tokens"] > 0 for t in r["tasks"]), r["tasks"]
assert all(t["reasoning_tokens"] == 0 for t in r["tasks"] if t["mode"] == "non-think")
PY
}

# Local engine.
"$BIN" eval -m "$MODEL" -c 1024 --concurrency 2 --tasks "$TASKS" --max-tokens 4 --quiet --details --out "$TMP/local.json" --chart "$TMP/local.svg" > "$TMP/local.txt"
check_report "$TMP/local.json" local
grep -q '<rect class="bar"' "$TMP/local.svg"
grep -q "^math *think-max" "$TMP/local.txt"

# A real dsv4 serve on a free port.
"$BIN" serve -m "$MODEL" --host 127.0.0.1 --port 0 -c 1024 2> "$TMP/serve.log" &
PID=$!
PORT=""
for _ in $(seq 1 600); do
  PORT=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$TMP/serve.log" | grep -o '[0-9]*$' || true)
  [ -n "$PORT" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$TMP/serve.log"; exit 1; }
  sleep 0.1
done
[ -n "$PORT" ] || { echo "dsv4 serve did not start"; cat "$TMP/serve.log"; exit 1; }
"$BIN" eval --endpoint "http://127.0.0.1:$PORT/v1" --concurrency 3 --tasks "$TASKS" --max-tokens 4 --quiet --details --out "$TMP/ep.json"
check_report "$TMP/ep.json" endpoint
kill "$PID"
wait "$PID" || true
PID=""

# The server is gone: a clear error, not a crash, and no report.
if "$BIN" eval --endpoint "http://127.0.0.1:$PORT" --tasks "$TASKS" --quiet --out "$TMP/none.json" 2> "$TMP/err.txt"; then
  echo "eval against a stopped server succeeded"; exit 1
fi
grep -q "cannot reach the server" "$TMP/err.txt" || { cat "$TMP/err.txt"; exit 1; }
[ ! -e "$TMP/none.json" ]
echo "eval_cli_test: ok"
