#!/usr/bin/env bash
# scripts/train-default.sh --smoke end to end (every stage on a tiny config for a few steps):
# the student model loads and answers, the eval report covers every held-out suite in every
# mode, and a second run resumes: every stage is skipped, nothing is retrained.
set -euo pipefail
DSV4=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsv4_train_default.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

DSV4=$DSV4 bash "$ROOT/scripts/train-default.sh" --smoke --threads 1 --work "$WORK" > "$WORK/log1" 2>&1 ||
  { tail -30 "$WORK/log1"; fail "the smoke pipeline failed"; }
for s in tasks tokenizer pretrain sft-math sft-code sft-logic sft-instruct sft-tools sft-chat grpo-math distill eval; do
  [ -e "$WORK/done/$s" ] || fail "stage $s did not finish"
done
for m in base sft-math rl-math default; do
  [ -e "$WORK/models/$m/config.json" ] || fail "models/$m has no config.json"
  [ -e "$WORK/eval/$m.json" ] || fail "no eval report for $m"
  grep -q '<svg' "$WORK/eval/$m.svg" || fail "no chart for $m"
done
# The unquantised master weights of the student load and were evaluated like it.
[ -e "$WORK/models/default-master.gguf" ] || fail "no models/default-master.gguf"
"$DSV4" check -m "$WORK/models/default-master.gguf" > /dev/null || fail "models/default-master.gguf does not load"
# The extra maths problems of the pre-training mix: every mode of each.
[ "$(grep -c '<｜Assistant｜>' "$WORK/text/math-pre.jsonl")" = 24 ] || fail "text/math-pre.jsonl: expected 2 suites x 4 problems x 3 modes"
# Pre-training saw the chat template's special tokens as their ids (what the engine feeds), not
# spelled out in bytes.
user_id=$(printf '<｜User｜>' | "$DSV4" tokenize -t "$WORK/tokenizer.json" | tr -d '[]')
case "$user_id" in ''|*,*) fail "<｜User｜> is not one token of the trained tokenizer: [$user_id]" ;; esac
n_user=$(od -An -tu4 -v "$WORK/data/pre/train-00000.u32" | tr -s ' ' '\n' | grep -cx "$user_id" || true)
[ "${n_user:-0}" -gt 0 ] ||
  fail "the pre-training data has no <｜User｜> token (id $user_id)"
# Every held-out suite in every mode is in the student's report and its master weights'.
for suite in math.arith math.multistep code.trace logic.order instruct.format tools.multi chat.identity; do
  for mode in non-think think-high think-max; do
    for r in default default-master; do
      tr -d ' \n' < "$WORK/eval/$r.json" | grep -q "\"suite\":\"$suite\",\"mode\":\"$mode\"" ||
        fail "eval/$r.json lacks $suite / $mode"
    done
  done
done
# The student is a model every command loads: a greedy answer comes out.
out=$("$DSV4" run -m "$WORK/models/default" -n 8 --temp 0 -p "Hello! Who are you?" 2>/dev/null) ||
  fail "dsv4 run on the student failed"
# Resume: nothing is redone.
before=$(stat -c %Y "$WORK/models/default/config.json")
DSV4=$DSV4 bash "$ROOT/scripts/train-default.sh" --smoke --threads 1 --work "$WORK" > "$WORK/log2" 2>&1 ||
  fail "the second run failed"
if grep -q "pre-training\|SFT specialist\|GRPO\|distillation\|evaluation" "$WORK/log2"; then
  cat "$WORK/log2"; fail "the second run redid a finished stage"
fi
[ "$(stat -c %Y "$WORK/models/default/config.json")" = "$before" ] || fail "the student was rewritten"
# A longer pre-training continues from the checkpoint instead of starting over.
rm "$WORK/done/pretrain"
DSV4=$DSV4 DSV4_PRE_STEPS=4 bash "$ROOT/scripts/train-default.sh" --smoke --threads 1 --work "$WORK" > "$WORK/log3" 2>&1 ||
  { cat "$WORK/log3"; fail "the extended pre-training failed"; }
grep -q "resuming from .*runs/pre/checkpoint.safetensors" "$WORK/log3" || { cat "$WORK/log3"; fail "pre-training did not resume"; }
grep -q '"step":4' "$WORK/runs/pre/log.jsonl" || fail "the resumed pre-training did not reach step 4"
[ "$(grep -c '"step":1,' "$WORK/runs/pre/log.jsonl")" = 1 ] || fail "the resumed pre-training logged step 1 again"
echo "ok"
