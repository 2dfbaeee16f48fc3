#!/usr/bin/env bash
# Fuzz every target with AFL++ (cargo-afl) for EXECS executions each (default 10 million),
# two at a time (one per core), then add what the fuzzers found to the checked-in corpus.
#   cargo install cargo-afl && cargo afl config --build   # once
#   fuzz/run.sh [EXECS]
set -euo pipefail
cd "$(dirname "$0")"
execs=${1:-10000000}
out=${AFL_OUT:-/tmp/managers-fuzz}
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
cargo afl build --release
run() {
  local target=$1
  rm -rf "$out/$target"
  cargo afl fuzz -E "$execs" -i "corpus/$target" -o "$out/$target" "target/release/$target" \
    > "$out/$target.log" 2>&1
  local stats="$out/$target/default/fuzzer_stats"
  echo "$target: $(grep -E '^(execs_done|saved_crashes|saved_hangs|corpus_count)' "$stats" | tr -s ' ' | tr '\n' ' ')"
  # New inputs the fuzzer kept join the corpus (the replay test runs them all).
  for f in "$out/$target"/default/queue/id:*; do
    [ -f "$f" ] || continue
    cp "$f" "corpus/$target/$(basename "$f" | cut -d, -f1 | tr ':' '-')-$(sha1sum "$f" | cut -c1-8)"
  done
  if ls "$out/$target"/default/crashes/id:* > /dev/null 2>&1; then
    echo "$target: CRASHES in $out/$target/default/crashes" >&2
    return 1
  fi
}
mkdir -p "$out"
status=0
(run frames; run server_message; run handshake) & a=$!
(run client_message; run value; run pickle) & b=$!
wait $a || status=1
wait $b || status=1
exit $status
