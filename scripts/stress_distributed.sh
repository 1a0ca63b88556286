#!/usr/bin/env bash
# The two-process training tests (codec DDP, LM DDP and FSDP) N times in a row (default 20) while two busy loops keep
# both cores busy; stops at the first failure. Usage: bash scripts/stress_distributed.sh [N]
set -u
cd "$(dirname "$0")/.."
rounds="${1:-20}"
logs=$(mktemp -d)  # one folder a run: two runs at once keep their own logs
tests=(tests/test_codec_train_distributed.py::test_two_gloo_processes_train_like_one_with_the_same_global_batch
       tests/test_lm_train_distributed.py::test_two_processes_train_like_one_with_the_same_global_batch)
hogs=()
for _ in 1 2; do python3 -c "while True: pass" & hogs+=($!); done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT
passed=0
for round in $(seq 1 "$rounds"); do
    started=$(date +%s)
    if ! python3 -m pytest -q -p no:cacheprovider "${tests[@]}" > "$logs/round_$round.log" 2>&1; then
        echo "round $round failed after $passed passing rounds: $logs/round_$round.log"
        tail -20 "$logs/round_$round.log"
        exit 1
    fi
    passed=$((passed + 1))
    echo "round $round passed ($(( $(date +%s) - started )) s; $(grep -o '[0-9]* passed' "$logs/round_$round.log"))"
done
echo "$passed of $rounds rounds passed in a row, both cores kept busy by two other processes"
