#!/usr/bin/env bash
# The trained default model shipped in assets/default-model (issue 12), as a user meets it
# without -m: it is the model `run` picks (not the random fallback), it answers the README's
# prompt and a sum worked out here, and a small held-out sample per suite (generated problems
# the training never saw; graded by the task code, greedy) stays at or above floors set
# below the figures the model was released with (README, "The default model").
# Usage: default_model_test.sh DSV4_BIN
set -euo pipefail
BIN=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
unset DSV4_DEFAULT_MODEL DSV4_ASSETS
export HOME=$T XDG_CACHE_HOME=$T/cache  # a random fallback would land here, never in the real cache
fail() { echo "FAIL: $*" >&2; exit 1; }

"$BIN" run -p "Hello! Who are you?" -n 256 --temp 0 -t 2 > "$T/hello.out" 2> "$T/hello.err" ||
  { cat "$T/hello.err"; fail "dsv4 run on the default model failed"; }
[ ! -e "$T/cache/dsv4" ] || fail "run created a random default model instead of using assets/default-model"
grep -qi "dsv4 default model" "$T/hello.out" || { cat "$T/hello.out"; fail "the README prompt is not answered"; }
# The README's sum (default think-high: worked column by column).
"$BIN" run -p "What is 345 + 278?" -n 256 --temp 0 -t 2 > "$T/sum.out" 2> "$T/sum.err" ||
  { cat "$T/sum.err"; fail "dsv4 run on the README's sum failed"; }
grep -q "answer is 623\." "$T/sum.out" || { cat "$T/sum.out"; fail "the README's sum is not answered 623"; }

"$BIN" eval --suite math.arith,math.multistep,code.trace,logic.order,instruct.format,tools.multi,chat.identity \
  --split heldout --n 5 --seed 11 --modes non-think,think-high --max-tokens 768 --concurrency 8 -t 2 -q \
  --out "$T/report.json" > "$T/eval.out" 2>&1 || { cat "$T/eval.out"; fail "dsv4 eval on the default model failed"; }
flat=$(tr -d ' \n' < "$T/report.json")
# at_least SUITE MODE N MIN_CORRECT
at_least() {
  local c
  c=$(printf '%s' "$flat" | sed -n "s/.*\"suite\":\"$1\",\"mode\":\"$2\",\"n\":$3,\"correct\":\([0-9]*\).*/\1/p")
  [ -n "$c" ] || fail "report has no $1 / $2 row with n $3"
  [ "$c" -ge "$4" ] || { cat "$T/eval.out"; fail "$1 / $2: $c of $3 correct, expected at least $4"; }
}
# Released with (this sample, greedy): chat.identity 4/5 non-think and 4/5 think-high,
# math.arith 3/5 think-high (1/5 non-think), code.trace 2/5 non-think, all suites 12/35 and
# 11/35. The floors are one answer lower, for SIMD targets whose rounding flips a near-tie;
# suites at 1/5 or less here have no floor of their own.
at_least chat.identity non-think 5 3
at_least chat.identity think-high 5 3
at_least math.arith think-high 5 2
at_least code.trace non-think 5 1
at_least all non-think 35 11
at_least all think-high 35 10
echo PASS
