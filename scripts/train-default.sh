#!/usr/bin/env bash
# Rebuilds the built-in default model from nothing (issue 12): generated task suites ->
# tokenizer -> pre-training -> one SFT specialist per domain -> GRPO on maths -> on-policy
# distillation of the specialists into one student (QAT, MTP trained along) -> export in the
# official layout -> `dsv4 eval` on held-out tasks per stage -> (--install) assets/default-model.
#
#   scripts/train-default.sh [--smoke] [--work DIR] [--install] [--threads N]
#
# Resumable stage by stage: a finished stage leaves WORK/done/STAGE and is skipped on the next
# run; an interrupted training stage continues from its last checkpoint (--resume). Sizes are
# the variables below (--smoke: a tiny config and a few steps per stage, what CI runs).
# Needs the built tree (bash scripts/setup.sh && cmake --build build); DSV4 names the binary.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DSV4=${DSV4:-$ROOT/build/dsv4}
WORK=$ROOT/build/train-default
SMOKE=0
INSTALL=0
THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --work) WORK=$2; shift ;;
    --install) INSTALL=1 ;;
    --threads) THREADS=$2; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "train-default.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$DSV4" ] || { echo "train-default.sh: $DSV4 not found: build first (cmake --build build)" >&2; exit 1; }

DOMAINS=(math code logic instruct tools chat)
declare -A SUITES=([math]=math.arith,math.multistep [code]=code.trace [logic]=logic.order
                   [instruct]=instruct.format [tools]=tools.multi [chat]=chat.identity)
MODES=non-think,think-high,think-max
if [ "$SMOKE" = 1 ]; then
  CONFIG=$ROOT/scripts/default-model/smoke-config.json
  VOCAB=2048 N_TRAIN=6 N_HELDOUT=2 SEQ=256 BATCH=2 SFT_SEQ=256 SFT_BATCH=2
  PRE_STEPS=3 SFT_STEPS=2 GRPO_STEPS=1 DISTILL_STEPS=1 GEN_TOKENS=24 EVAL_TOKENS=48 PRE_ARITH=4 PRE_WORDS=4
else
  CONFIG=$ROOT/scripts/default-model/config.json
  # SFT rows hold whole conversations (think-max multi-step maths reaches ~700 tokens).
  VOCAB=4096 N_TRAIN=3000 N_HELDOUT=20 SEQ=512 BATCH=8 SFT_SEQ=1024 SFT_BATCH=4
  PRE_STEPS=1100 SFT_STEPS=24 GRPO_STEPS=6 DISTILL_STEPS=12 GEN_TOKENS=768 EVAL_TOKENS=1024
  # Maths is what a small model learns slowest (column arithmetic needs digit lookups by place):
  # extra arithmetic problems (PRE_ARITH) and word problems (PRE_WORDS) in the pre-training mix.
  # Word-problem traces are long (they restate the steps left), so at equal counts they crowded
  # out the arithmetic: ~1/3 of the maths bytes and a base model at 15% on held-out arithmetic.
  PRE_ARITH=18000 PRE_WORDS=6000
fi
# Any size above can be overridden from the environment (e.g. PRE_STEPS=3000 for a longer run).
for v in VOCAB N_TRAIN N_HELDOUT SEQ BATCH SFT_SEQ SFT_BATCH PRE_STEPS SFT_STEPS GRPO_STEPS DISTILL_STEPS GEN_TOKENS EVAL_TOKENS \
         PRE_ARITH PRE_WORDS; do
  o=DSV4_$v; [ -n "${!o:-}" ] && printf -v "$v" '%s' "${!o}"
done
mkdir -p "$WORK"/{done,tasks,text,data,runs,models,eval}
cd "$WORK"
log() { printf '\n== %s  %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
done_() { [ -e "done/$1" ]; }
mark() { date -u +%s > "done/$1"; }
# train RUN_JSON [subcommand]: runs (or resumes) one training stage.
train() {
  local cfg=$1 sub=${2:-} out
  # "out" is relative to the run file's folder (runs/), as the trainer reads it.
  out=$(dirname "$cfg")/$(sed -n 's/.*"out": *"\([^"]*\)".*/\1/p' "$cfg")
  if [ -z "$sub" ] && [ -e "$out/checkpoint.safetensors" ]; then
    log "resuming from $out/checkpoint.safetensors"
    "$DSV4" train --config "$cfg" --resume --quiet
  else
    "$DSV4" train $sub --config "$cfg" --quiet
  fi
}
# export_model RUN MODEL_DIR [MASTER.gguf]: the release layout (and the unquantised master weights).
export_model() {
  "$DSV4" train export --checkpoint "$1" --out "$2" --tokenizer tokenizer.json ${3:+--master-gguf "$3"} >/dev/null
}
# Licence texts every Debian system has (base-files): the prose part of the pre-training mix.
CORPUS=()
for f in Apache-2.0 GPL-3 LGPL-3 MPL-2.0 GFDL-1.3 Artistic BSD; do
  [ -e "/usr/share/common-licenses/$f" ] && CORPUS+=("/usr/share/common-licenses/$f")
done

# 1. Task suites (train and held-out splits; disjoint by construction).
if ! done_ tasks; then
  log "task suites"
  all=
  for d in "${DOMAINS[@]}"; do
    "$DSV4" tasks write --suite "${SUITES[$d]}" --split train --n "$N_TRAIN" --seed 1 --out "tasks/$d.jsonl"
    all+=${all:+,}${SUITES[$d]}
  done
  "$DSV4" tasks write --suite "$all" --split heldout --n "$N_HELDOUT" --seed 2 --out tasks/heldout.jsonl
  "$DSV4" tasks write --suite "$all" --split train --n "$N_TRAIN" --seed 1 --text "$MODES" --out text/tasks.jsonl
  mark tasks
fi

# 2. Tokenizer: byte-level BPE on the task text and the licence prose, V4 special tokens and
# V4's pre-tokenizer except for numbers: one token per digit instead of V4's groups of up to
# three, so that a small model reads the digits it works column by column directly.
if ! done_ tokenizer; then
  log "tokenizer (vocab $VOCAB)"
  gzip -dc "$ROOT/assets/deepseek-v4-tokenizer.json.gz" | sed 's/\\\\p{N}{1,3}/\\\\p{N}/' > tokenizer-template.json
  grep -q '"\\\\p{N}"' tokenizer-template.json ||
    { echo "train-default.sh: the release tokenizer's digit rule (\\p{N}{1,3}) was not found" >&2; exit 1; }
  "$DSV4" tokenizer train --vocab-size "$VOCAB" --template tokenizer-template.json --out tokenizer.json \
    text/tasks.jsonl "${CORPUS[@]}"
  mark tokenizer
fi

# 3. Pre-training: the task conversations in every mode (all tokens; the chat template's special
# tokens as the special ids, as the engine will see them), extra maths problems (another seed of
# the train split, so still disjoint from the held-out one) and the licence prose.
if ! done_ pretrain; then
  log "pre-training ($PRE_STEPS steps)"
  if [ ! -e text/math-pre.jsonl ]; then
    "$DSV4" tasks write --suite math.arith --split train --n "$PRE_ARITH" --seed 5 --text "$MODES" \
      --out text/arith-pre.jsonl
    "$DSV4" tasks write --suite math.multistep --split train --n "$PRE_WORDS" --seed 5 --text "$MODES" \
      --out text/words-pre.jsonl
    cat text/arith-pre.jsonl text/words-pre.jsonl > text/math-pre.jsonl.tmp
    mv text/math-pre.jsonl.tmp text/math-pre.jsonl
    rm text/arith-pre.jsonl text/words-pre.jsonl
  fi
  [ -e data/pre/manifest.json ] ||
    "$DSV4" train data prepare --tokenizer tokenizer.json --vocab-size "$VOCAB" --val-fraction 0.02 \
      --special-tokens --out data/pre text/tasks.jsonl text/math-pre.jsonl "${CORPUS[@]}"
  cat > runs/pre.json <<EOF
{"model": "$CONFIG", "data": "../data/pre", "out": "../runs/pre", "seq_len": $SEQ, "batch": $BATCH,
 "steps": $PRE_STEPS, "lr": 3e-3, "warmup": $(( PRE_STEPS / 20 + 1 )), "schedule": "wsd", "wsd_decay": 0.2,
 "compute": "bf16", "muon_ns": "bf16", "threads": $THREADS, "checkpoint_every": 25, "log_every": 10, "seed": 1}
EOF
  train runs/pre.json
  export_model runs/pre models/base
  mark pretrain
fi

# 4. SFT specialists: one per domain, loss on the assistant's tokens only, QAT on.
for d in "${DOMAINS[@]}"; do
  done_ "sft-$d" && continue
  log "SFT specialist: $d ($SFT_STEPS steps)"
  [ -e "data/sft-$d/manifest.json" ] ||
    "$DSV4" train data sft --tasks "tasks/$d.jsonl" --tokenizer tokenizer.json --modes "$MODES" --out "data/sft-$d" \
      --val-fraction 0.02
  cat > "runs/sft-$d.json" <<EOF
{"model": "$CONFIG", "init_from": "../models/base", "objective": "sft", "data": "../data/sft-$d",
 "out": "../runs/sft-$d", "seq_len": $SFT_SEQ, "batch": $SFT_BATCH, "steps": $SFT_STEPS, "lr": 1e-3, "warmup": 2,
 "qat": true, "compute": "bf16", "muon_ns": "bf16", "threads": $THREADS, "checkpoint_every": 20, "seed": 2}
EOF
  train "runs/sft-$d.json"
  export_model "runs/sft-$d" "models/sft-$d"
  mark "sft-$d"
done

# 5. GRPO on the maths specialist: graded rewards, groups of samples per prompt, engine rollouts.
if ! done_ grpo-math; then
  log "GRPO: math ($GRPO_STEPS steps)"
  cat > runs/grpo-math.json <<EOF
{"policy": "../models/sft-math", "tasks": ["../tasks/math.jsonl"], "tokenizer": "../tokenizer.json",
 "mode": "think-high", "reward": {"type": "grade"}, "group_size": 4, "prompts_per_step": 4,
 "max_tokens": $GEN_TOKENS, "temperature": 1.0, "clip": 0.2, "kl_weight": 0.02, "out": "../runs/grpo-math",
 "steps": $GRPO_STEPS, "lr": 2e-4, "qat": true, "threads": $THREADS, "seed": 3}
EOF
  train runs/grpo-math.json grpo
  export_model runs/grpo-math models/rl-math
  mark grpo-math
fi

# 6. On-policy distillation of every specialist into one student (starts from the base model).
if ! done_ distill; then
  log "distillation ($DISTILL_STEPS steps)"
  domains=
  for d in "${DOMAINS[@]}"; do
    teacher=../models/sft-$d
    [ "$d" = math ] && teacher=../models/rl-math
    # Tool tasks need multi-turn rollouts; their prompts are distilled on the first turn.
    domains+=${domains:+,}"{\"name\": \"$d\", \"teacher\": \"$teacher\", \"tasks\": [\"../tasks/$d.jsonl\"]}"
  done
  cat > runs/distill.json <<EOF
{"student": "../models/base", "domains": [$domains], "tokenizer": "../tokenizer.json", "mode": "think-high",
 "out": "../runs/distill", "steps": $DISTILL_STEPS, "prompts_per_step": 2, "samples_per_prompt": 1,
 "max_tokens": $GEN_TOKENS, "temperature": 1.0, "lr": 3e-4, "qat": true, "threads": $THREADS, "seed": 4}
EOF
  train runs/distill.json distill
  export_model runs/distill models/default models/default-master.gguf
  mark distill
fi

# 7. Held-out evaluation: the student in every mode on every suite, and its unquantised master
# weights likewise (what the FP8 / FP4 export loses); base, each specialist (on its own domain)
# and the RL model in think-high, for the stage table. A finished report is kept.
if ! done_ eval; then
  log "evaluation"
  ev() {  # MODEL TASKS MODES
    [ -e "eval/$1.json" ] ||
      "$DSV4" eval -m "models/$1" --tasks "$2" --modes "$3" --max-tokens "$EVAL_TOKENS" --concurrency 8 \
        -t "$THREADS" -q --details --out "eval/$1.json" --chart "eval/$1.svg"
  }
  ev default tasks/heldout.jsonl "$MODES"
  [ -e models/default-master.gguf ] || export_model runs/distill models/default models/default-master.gguf
  [ -e eval/default-master.json ] ||
    "$DSV4" eval -m models/default-master.gguf --tasks tasks/heldout.jsonl --modes "$MODES" --max-tokens "$EVAL_TOKENS" \
      --concurrency 8 -t "$THREADS" -q --details --out eval/default-master.json --chart eval/default-master.svg
  ev base tasks/heldout.jsonl think-high
  for d in "${DOMAINS[@]}"; do
    [ -e "tasks/heldout-$d.jsonl" ] || "$DSV4" tasks write --suite "${SUITES[$d]}" --split heldout \
      --n "$N_HELDOUT" --seed 2 --out "tasks/heldout-$d.jsonl" >/dev/null
    ev "sft-$d" "tasks/heldout-$d.jsonl" think-high
  done
  ev rl-math tasks/heldout-math.jsonl think-high
  mark eval
fi

if [ "$INSTALL" = 1 ]; then
  log "installing models/default into assets/default-model"
  dst=$ROOT/assets/default-model
  mkdir -p "$dst.tmp"
  cp models/default/config.json models/default/*.safetensors models/default/tokenizer.json "$dst.tmp/"
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
fi
log "done: $WORK/models/default (eval: $WORK/eval/default.json)"
