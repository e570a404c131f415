#!/usr/bin/env bash
# Memory over a long generation: runs `ssm generate` for N tokens (default 1,000,000; past
# end-of-text) and samples the process's resident memory every few seconds. The recurrent state is
# fixed-size, so what may grow is only the list of generated ids the generation loop returns
# (4 bytes a token, kept in a doubling std::vector).
# With DEVICE=cuda it generates on the GPU and also samples the process's GPU memory (nvidia-smi).
#   N=1000000 MODEL=models/default THREADS=2 scripts/memory_flat.sh [extra generate flags]
#   DEVICE=cuda N=1000000 scripts/memory_flat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
MODEL=${MODEL:-models/default}
BIN=${BIN:-build/bin/ssm}
EVERY=${EVERY:-5}
OUTF=$(mktemp)
trap 'rm -f "$OUTF"' EXIT
dev=()
[ -n "${DEVICE:-}" ] && dev=(--device "$DEVICE")
"$BIN" -t "${THREADS:-2}" generate -m "$MODEL" "${dev[@]}" -p "In the beginning" -n "$N" --ignore-eos --output-ids "$@" >"$OUTF" 2>/dev/null &
pid=$!
t0=$(date +%s)
gpu() {  # memory in use on the GPU in MiB, whole device (the machine runs nothing else); empty on CPU
  [ "${DEVICE:-cpu}" = cpu ] && return 0
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '| seconds | generated ids so far | VmRSS (MiB) | VmHWM (MiB) | GPU memory used (MiB) |\n|---|---|---|---|---|\n'
while kill -0 "$pid" 2>/dev/null; do
  if rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null) && hwm=$(awk '/^VmHWM/ {print $2}' /proc/$pid/status 2>/dev/null); then
    ids=$(wc -w <"$OUTF")
    printf '| %d | %s | %.1f | %.1f | %s |\n' "$(( $(date +%s) - t0 ))" "$ids" "$(mib "$rss")" "$(mib "$hwm")" "$(gpu)"
  fi
  sleep "$EVERY"
done
wait "$pid"
echo "done: $(wc -w <"$OUTF") ids in $(( $(date +%s) - t0 )) s"
