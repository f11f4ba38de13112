#!/usr/bin/env bash
# `dsv4 chat` and `dsv4 run` in a real pseudo-terminal (tmux): banner, a turn stopped with
# Ctrl-C that returns to the prompt, /think switches, /stats, /reset, Ctrl-C at the prompt,
# /exit; `dsv4 run` on a terminal (reasoning dimmed) and piped (answer on stdout only).
set -uo pipefail
BIN=$1; MODEL=$2
# One tmux server per part: after kill-session the old server exits asynchronously, and a
# new-session on the same socket can race with it ("server exited unexpectedly").
SOCK="dsv4pty$$a"
PASS=0; FAIL=0
T() { tmux -L "$SOCK" "$@"; }
cleanup() { for s in "dsv4pty$$a" "dsv4pty$$b"; do tmux -L "$s" kill-server >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
screen() { T capture-pane -p -J -S -2000 -t chat; }
check() {  # check NAME PATTERN [TIMEOUT]
  local name=$1 pat=$2 limit=${3:-60} i=0
  while [ $i -lt $((limit * 10)) ]; do
    if screen | grep -qE -- "$pat"; then echo "ok - $name"; PASS=$((PASS + 1)); return 0; fi
    sleep 0.1; i=$((i + 1))
  done
  echo "not ok - $name (no /$pat/ on screen)"; screen | tail -20; FAIL=$((FAIL + 1)); return 1
}
count() { screen | grep -cE -- "$1" || true; }

T new-session -d -s chat -x 160 -y 50 "$BIN chat -m $MODEL --seed 1 -n 100000 --temp 1 -c 2048; echo CHAT-EXITED:\$?; sleep 60"
check "banner" "dsv4 chat: model" 120
check "first prompt" "^> " 30
T send-keys -t chat "hello there" Enter
sleep 3
T send-keys -t chat C-c
check "Ctrl-C stops the turn" "\[stopped\]" 60
check "prompt returns after Ctrl-C" "^> $" 30
T send-keys -t chat "/think none" Enter
check "/think none" "reasoning: none" 20
T send-keys -t chat "/think max" Enter
check "/think max" "reasoning: max" 20
T send-keys -t chat "/stats" Enter
check "/stats counts the turn" "turns 1, prompt tokens [0-9]+" 20
T send-keys -t chat "second question" Enter
sleep 3
T send-keys -t chat C-c
[ "$(count '\[stopped\]')" -ge 2 ] && { echo "ok - second turn stopped"; PASS=$((PASS+1)); } || { sleep 5; [ "$(count '\[stopped\]')" -ge 2 ] && { echo "ok - second turn stopped"; PASS=$((PASS+1)); } || { echo "not ok - second turn stopped"; FAIL=$((FAIL+1)); }; }
T send-keys -t chat "/stats" Enter
check "/stats after two turns" "turns 2, prompt tokens [0-9]+ \(cached [1-9][0-9]*\)" 20
T send-keys -t chat C-c
sleep 0.5
T send-keys -t chat "/reset" Enter
check "Ctrl-C at the prompt keeps the chat alive" "conversation cleared" 20
T send-keys -t chat "/exit" Enter
check "/exit ends the chat cleanly" "CHAT-EXITED:0" 20
T kill-server >/dev/null 2>&1 || true

# dsv4 run on a terminal: reasoning dimmed (SGR 2), then the answer; exit 0.
SOCK="dsv4pty$$b"
T new-session -d -s chat -x 160 -y 50 "$BIN run -m $MODEL -p 'hi' -n 12 --seed 3 --think high; echo RUN-EXITED:\$?; sleep 60"
check "run on a terminal exits 0" "RUN-EXITED:0" 120
if T capture-pane -p -e -t chat | grep -q $'\e\[2m'; then echo "ok - reasoning dimmed"; PASS=$((PASS+1)); else echo "not ok - reasoning dimmed"; FAIL=$((FAIL+1)); fi
T kill-session -t chat

# Piped: the answer alone on stdout, reasoning on stderr; chat mode has no reasoning.
OUT=$("$BIN" run -m "$MODEL" -p hi -n 8 --seed 3 --think none 2>/tmp/dsv4pty.err.$$); RC=$?
if [ $RC -eq 0 ] && [ -n "$OUT" ]; then echo "ok - piped run prints the answer"; PASS=$((PASS+1)); else echo "not ok - piped run (rc $RC)"; FAIL=$((FAIL+1)); fi
OUT2=$("$BIN" run -m "$MODEL" -p hi -n 8 --seed 3 --think none 2>/dev/null)
[ "$OUT" = "$OUT2" ] && { echo "ok - same seed, same answer"; PASS=$((PASS+1)); } || { echo "not ok - same seed, same answer"; FAIL=$((FAIL+1)); }
seq 1 2000 | tr '\n' ' ' | "$BIN" run -m "$MODEL" -c 64 >/dev/null 2>/tmp/dsv4pty.err.$$; RC=$?
if [ $RC -eq 1 ] && grep -q "context" /tmp/dsv4pty.err.$$; then echo "ok - prompt over the context is a clear error"; PASS=$((PASS+1)); else echo "not ok - context error (rc $RC)"; cat /tmp/dsv4pty.err.$$; FAIL=$((FAIL+1)); fi
rm -f /tmp/dsv4pty.err.$$

echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]
