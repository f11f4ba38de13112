#!/usr/bin/env bash
# dsv4 and llama.cpp side by side on one GGUF file: `dsv4 bench -m FILE` in each numerics mode
# and llama.cpp's `llama-bench -m FILE`, with the same thread count, prompt length and number
# of decoded tokens, run alternately (round by round, so that both see the same machine load),
# then the median tok/s of each and dsv4's ratios to llama.cpp. A benchmark, not a test.
#
#   bench/llama_side_by_side.sh LLAMA_BENCH FILE.gguf [THREADS=2] [PROMPT=512] [DECODE=32] [ROUNDS=3]
#
# LLAMA_BENCH: the llama-bench binary of a llama.cpp build that runs `deepseek4` files (the
# ssweens/llama.cpp-deepseek-v4 fork; build it from its source, it is no dependency of dsv4).
# DSV4: the dsv4 binary (default build/dsv4); MODES: the dsv4 numerics modes to run (default
# "precise reference int8"); DSV4_ARGS / LLAMA_ARGS: more options for each (e.g. "--no-mmap",
# "-mmp 0"). Output: one line per run, then a summary table.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n 2,14p "$0" >&2; exit 2; }
LLAMA_BENCH=$1 FILE=$2 THREADS=${3:-2} PROMPT=${4:-512} DECODE=${5:-32} ROUNDS=${6:-3}
DSV4=${DSV4:-$(dirname "$0")/../build/dsv4}
MODES=${MODES:-precise reference int8}
read -r -a dsv4_args <<< "${DSV4_ARGS:-}"
read -r -a llama_args <<< "${LLAMA_ARGS:-}"
[[ -x $LLAMA_BENCH ]] || { echo "not an executable: $LLAMA_BENCH" >&2; exit 2; }
[[ -x $DSV4 ]] || { echo "not an executable: $DSV4 (set DSV4=...)" >&2; exit 2; }
[[ -f $FILE ]] || { echo "no such file: $FILE" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for ((round = 1; round <= ROUNDS; ++round)); do
  for mode in $MODES; do
    "$DSV4" bench -m "$FILE" -t "$THREADS" --numerics "$mode" --prefill "$PROMPT" --decode "$DECODE" --no-long \
      --spec none --json "${dsv4_args[@]}" > "$tmp/dsv4-$mode-$round.json"
    echo "round $round dsv4 $mode: $(tr -d '\n' < "$tmp/dsv4-$mode-$round.json" | head -c 300)..."
  done
  "$LLAMA_BENCH" -m "$FILE" -t "$THREADS" -p "$PROMPT" -n "$DECODE" -r 1 -o json "${llama_args[@]}" > "$tmp/llama-$round.json" 2> "$tmp/llama-$round.err" ||
    { cat "$tmp/llama-$round.err" >&2; exit 1; }
  echo "round $round llama.cpp: $(tr -d '\n ' < "$tmp/llama-$round.json" | grep -o '"avg_ts":[0-9.e+-]*' | tr '\n' ' ')"
done

python3 - "$tmp" "$ROUNDS" "$FILE" "$THREADS" "$PROMPT" "$DECODE" "$MODES" "${DSV4_ARGS:-}" "${LLAMA_ARGS:-}" <<'EOF'
import json, statistics, sys
tmp, rounds, path, threads, prompt, decode, modes, dsv4_args, llama_args = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
def med(xs): return statistics.median(xs)
rows = {}
for mode in modes.split():
    runs = [json.load(open(f"{tmp}/dsv4-{mode}-{r}.json")) for r in range(1, rounds + 1)]
    rows[f"dsv4 {mode}"] = (med([r["prefill_tok_s"] for r in runs]), med([r["decode_tok_s"] for r in runs]))
pp, tg = [], []
for r in range(1, rounds + 1):
    for t in json.load(open(f"{tmp}/llama-{r}.json")):
        (pp if t["n_prompt"] > 0 and t["n_gen"] == 0 else tg).append(t["avg_ts"])
llama = (med(pp), med(tg))
rows["llama.cpp"] = llama
print(f"\n{path}: {threads} threads, {prompt}-token prompt, {decode} decoded tokens, median of {rounds} rounds"
      f" (dsv4 options: '{dsv4_args}', llama-bench options: '{llama_args}')")
print("| engine | prefill tok/s | decode tok/s | prefill vs llama.cpp | decode vs llama.cpp |")
print("|---|---|---|---|---|")
for name, (p, d) in rows.items():
    print(f"| {name} | {p:.2f} | {d:.2f} | {p / llama[0]:.2f}x | {d / llama[1]:.2f}x |")
EOF
