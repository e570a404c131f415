#!/usr/bin/env bash
# A/B of two ssm binaries on one model's CPU decode (or prefill), interleaved run by run so that the
# host's slow phases hit both alike; prints every run and each side's median, mean and best. On a
# shared VM single runs vary by ±20%: compare medians over ten or more runs, not single numbers.
#   scripts/ab_cpu.sh OLD_SSM NEW_SSM MODEL_DIR [RUNS=10] [extra `ssm bench` args, default -p 0 -n 128]
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,6p "$0"; exit 2; }
old=$1 new=$2 model=$3 runs=${4:-10}
shift $(( $# >= 4 ? 4 : 3 ))
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(-p 0 -n 128)
out=$(mktemp)
for i in $(seq "$runs"); do
  for side in old new; do
    bin=$old; [ $side = new ] && bin=$new
    v=$("$bin" -t "${THREADS:-2}" bench -m "$model" "${args[@]}" -r 1 2>&1 | awk -F'|' '/\| (pp|tg)[0-9]/ {print $8}' | awk '{print $1}' | tail -1)
    echo "$side $v" | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import statistics, sys
d = {}
for line in open(sys.argv[1]):
    k, v = line.split()
    d.setdefault(k, []).append(float(v))
for k in ("old", "new"):
    v = d.get(k, [])
    if v:
        print(f"{k}: median {statistics.median(v):.2f}  mean {statistics.mean(v):.2f}  best {max(v):.2f}  ({len(v)} runs, tok/s)")
if d.get("old") and d.get("new"):
    print(f"new / old, medians: {statistics.median(d['new']) / statistics.median(d['old']):.3f}")
PY
rm -f "$out"
