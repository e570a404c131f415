#!/usr/bin/env bash
# CPU speed comparison with llama.cpp on the same random-weight models, run back to back.
#
#   LLAMA_CPP_DIR=/path/to/llama.cpp scripts/bench_cpu_peers.sh
#
# For each (shape, dtype) it makes, if missing, an HF checkpoint of random weights
# (scripts/write_random_checkpoint.py) and its GGUF (scripts/hf_to_gguf.py), then runs
#   llama-bench -m X.gguf -p PP -n TG -t THREADS -r REPS      and
#   ssm -t THREADS bench -m HF_DIR -p PP -n TG -r REPS
# and prints one markdown table with both engines' tokens/s, their ratios, and the decode floor
# (weight bytes / measured read bandwidth, from bench/stream_read.cpp).
#
# Environment (all optional except LLAMA_CPP_DIR):
#   LLAMA_CPP_DIR  llama.cpp source or build tree; llama-bench is looked up in $LLAMA_CPP_DIR/build/bin,
#                  $LLAMA_CPP_DIR/bin, $LLAMA_CPP_DIR
#   SSM_BIN        our CLI (default: build/bin/ssm)
#   PEERS_DIR      where checkpoints and GGUFs live (default: .peers/models, git-ignored)
#   CASES          space-separated shape:dtype list
#                  (default: "mamba-130m:f32 mamba-130m:f16 mamba-130m:q8_0 mamba-1.4b:f16 mamba-1.4b:q8_0")
#   THREADS (2), PP (512), TG (128), REPS (3)
#   ROUNDS         rounds per case (default 1): each round runs both engines (-r REPS each), llama.cpp
#                  first in odd rounds and ssm first in even ones; the table reports each engine's
#                  median over the rounds and the range of the per-round ratios, so a noisy machine's
#                  drift shows up instead of landing on one engine
#   Q8_FROM        how q8_0 GGUFs are made: "quantize" (llama-quantize of the f16 GGUF to Q8_0, default)
#                  or "convert" (scripts/hf_to_gguf.py --type q8_0 from the f16 checkpoint; slow in pure Python)
#   BANDWIDTH_GBS  skip the bandwidth measurement and use this value (GB/s)
#   SKIP_SSM=1 / SKIP_LLAMA=1  run only one engine
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp build (with llama-bench)}"
SSM_BIN=${SSM_BIN:-$ROOT/build/bin/ssm}
PEERS_DIR=${PEERS_DIR:-$ROOT/.peers/models}
CASES=${CASES:-"mamba-130m:f32 mamba-130m:f16 mamba-130m:q8_0 mamba-1.4b:f16 mamba-1.4b:q8_0"}
THREADS=${THREADS:-2}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-1}
Q8_FROM=${Q8_FROM:-quantize}
PY=${PYTHON:-python3}

find_bin() {
  local d
  for d in "$LLAMA_CPP_DIR/build/bin" "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR"; do
    if [[ -x "$d/$1" ]]; then echo "$d/$1"; return 0; fi
  done
  echo "error: $1 not found under $LLAMA_CPP_DIR" >&2
  return 1
}
LLAMA_BENCH=$(find_bin llama-bench)
mkdir -p "$PEERS_DIR"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

log() { echo "[bench_cpu_peers] $*" >&2; }

# HF checkpoint for a shape and a float dtype (q8_0 cases use the f16 checkpoint).
hf_dir() {  # shape dtype
  local dt=$2
  [[ $dt == q8_0 ]] && dt=f16
  local d="$PEERS_DIR/$1-$dt"
  if [[ ! -f "$d/model.safetensors" ]]; then
    log "writing $d"
    "$PY" "$ROOT/scripts/write_random_checkpoint.py" --shape "$1" --dtype "$dt" --out "$d" >&2
  fi
  echo "$d"
}

# What ssm runs: the HF checkpoint itself, or for q8_0 its `ssm convert --to q8` (int8 blocks of 32
# with an f32 scale; the matrices llama.cpp's Q8_0 quantises, except dt_proj, which stays f16 here).
ssm_dir() {  # shape dtype
  if [[ $2 != q8_0 ]]; then hf_dir "$1" "$2"; return; fi
  local d="$PEERS_DIR/$1-ssm-q8"
  if [[ ! -f "$d/config.json" ]]; then
    local src
    src=$(hf_dir "$1" f16)
    log "ssm convert $src -> $d"
    "$SSM_BIN" convert -m "$src" --to q8 -o "$d" >&2
  fi
  echo "$d"
}

gguf_file() {  # shape dtype
  local f="$PEERS_DIR/$1-$2.gguf"
  if [[ ! -f "$f" ]]; then
    if [[ $2 == q8_0 && $Q8_FROM == quantize ]]; then
      local src
      src=$(gguf_file "$1" f16)
      log "llama-quantize $src -> $f"
      "$(find_bin llama-quantize)" "$src" "$f" Q8_0 >"$WORK/quantize.log" 2>&1 || { cat "$WORK/quantize.log" >&2; exit 1; }
    else
      local d
      d=$(hf_dir "$1" "$2")
      log "converting $d -> $f"
      "$PY" "$ROOT/scripts/hf_to_gguf.py" "$d" "$f" --type "$2" >&2
    fi
  fi
  echo "$f"
}

# Read bandwidth (GB/s) with THREADS threads.
if [[ -z ${BANDWIDTH_GBS:-} ]]; then
  ${CXX:-c++} -O3 -march=native -std=c++20 -pthread "$ROOT/bench/stream_read.cpp" -o "$WORK/stream_read"
  "$WORK/stream_read" "$THREADS" 1024 10 | tee "$WORK/stream.txt" >&2
  BANDWIDTH_GBS=$(sed -n 's/.*, \([0-9.]*\) GB\/s.*/\1/p' "$WORK/stream.txt")
fi

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
run_llama() {  # gguf -> "pp tg" (or "- -")
  if [[ -n ${SKIP_LLAMA:-} ]]; then echo "- -"; return; fi
  log "llama-bench $1"
  "$LLAMA_BENCH" -m "$1" -p "$PP" -n "$TG" -t "$THREADS" -r "$REPS" -o json >"$WORK/lb.json" 2>"$WORK/lb.err" ||
    { cat "$WORK/lb.err" >&2; exit 1; }
  "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
pp = [x for x in r if x["n_prompt"] > 0 and x["n_gen"] == 0]
tg = [x for x in r if x["n_gen"] > 0 and x["n_prompt"] == 0]
f = lambda v: "%.2f" % v[0]["avg_ts"] if v else "-"
print(f(pp), f(tg))' "$WORK/lb.json"
}
run_ssm() {  # model dir -> "pp tg" (or "- -")
  if [[ -n ${SKIP_SSM:-} ]]; then echo "- -"; return; fi
  log "ssm bench $1"
  "$SSM_BIN" -t "$THREADS" bench -m "$1" -p "$PP" -n "$TG" -r "$REPS" >"$WORK/ssm.txt"
  local pp tg
  pp=$(awk -F"|" -v t="pp$PP" '$6 ~ t {split($(NF-1), a, " "); print a[1]}' "$WORK/ssm.txt")
  tg=$(awk -F"|" -v t="tg$TG" '$6 ~ t {split($(NF-1), a, " "); print a[1]}' "$WORK/ssm.txt")
  echo "${pp:--} ${tg:--}"
}
for c in $CASES; do
  shape=${c%%:*}
  dt=${c#*:}
  g=$(gguf_file "$shape" "$dt")
  d=-
  [[ -n ${SKIP_SSM:-} ]] || d=$(ssm_dir "$shape" "$dt")
  for ((round = 1; round <= ROUNDS; round++)); do
    lpp='' spp=''
    if ((round % 2)); then
      read -r lpp ltg < <(run_llama "$g") || true
      read -r spp stg < <(run_ssm "$d") || true
    else
      read -r spp stg < <(run_ssm "$d") || true
      read -r lpp ltg < <(run_llama "$g") || true
    fi
    # The engines run in process substitutions, whose failures do not stop the script by themselves.
    [[ -n $lpp ]] || { log "llama-bench failed on $g"; exit 1; }
    [[ -n $spp ]] || { log "ssm bench failed on $d"; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$shape" "$dt" "$(stat -c %s "$g")" "$lpp" "$ltg" "$spp" "$stg" >>"$RESULTS"
  done
done

"$PY" - "$RESULTS" "$BANDWIDTH_GBS" "$PP" "$TG" "$THREADS" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
bw, pp, tg, th = float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
num = lambda s: float(s) if s not in ("-", "") else None
cases = {}
for shape, dt, size, *vals in rows:
    cases.setdefault((shape, dt, size), []).append([num(v) for v in vals])
def med(rounds, i):
    v = [r[i] for r in rounds if r[i] is not None]
    return statistics.median(v) if v else None
fmt = lambda v: "%.2f" % v if v is not None else "-"
def ratio(rounds, s, l):
    a, b = med(rounds, s), med(rounds, l)
    if not a or not b:
        return "-"
    per = [r[s] / r[l] for r in rounds if r[s] and r[l]]
    return "%.2f" % (a / b) + (" (%.2f–%.2f)" % (min(per), max(per)) if len(per) > 1 else "")
n = max((len(r) for r in cases.values()), default=1)
print("read bandwidth: %.2f GB/s (%s threads); decode floor = weight bytes / bandwidth" % (bw, th))
if n > 1:
    print("%d rounds per case: medians, and the range of the per-round ratios in brackets" % n)
print()
print("| shape | weights | GGUF GB | llama.cpp pp%s | llama.cpp tg%s | ssm pp%s | ssm tg%s | ssm/llama pp | ssm/llama tg | tg floor (t/s) |" % (pp, tg, pp, tg))
print("|---|---|---|---|---|---|---|---|---|---|")
for (shape, dt, size), rounds in cases.items():
    gb = int(size) / 1e9
    print("| %s | %s | %.3f | %s | %s | %s | %s | %s | %s | %.1f |" % (
        shape, dt, gb, fmt(med(rounds, 0)), fmt(med(rounds, 1)), fmt(med(rounds, 2)), fmt(med(rounds, 3)),
        ratio(rounds, 2, 0), ratio(rounds, 3, 1), bw / gb))
EOF
