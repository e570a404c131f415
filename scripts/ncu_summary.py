#!/usr/bin/env python3
"""Per-kernel summary of an Nsight Compute CSV (`ncu --metrics gpu__time_duration.sum --csv --page raw`):
one line per (kernel name, grid), in order of first launch: launches, mean duration in microseconds,
and the total. Divide a row's launches by the layer count to read per-layer figures.

  ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw --launch-count 500 \\
      build-gpu/bin/ssm bench --device cuda --dtype bf16 --shape mamba2-2.7b -p 2048 -n 0 -r 1 > pf.csv
  python3 scripts/ncu_summary.py pf.csv
"""
import csv
import sys


def main(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    heads = [i for i, r in enumerate(rows) if r and r[0] == "ID"]
    if not heads:
        sys.exit(f"{path}: no ncu CSV header (a line starting with \"ID\") -- was ncu run with --csv --page raw?")
    h = rows[heads[0]]
    try:
        name, dur, grid = h.index("Kernel Name"), h.index("gpu__time_duration.sum"), h.index("Grid Size")
    except ValueError as e:
        sys.exit(f"{path}: missing column ({e}); collect gpu__time_duration.sum")
    unit = rows[heads[0] + 1][dur] if len(rows) > heads[0] + 1 else "ns"
    scale = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "nsecond": 1e-3}.get(unit, 1e-3)
    agg = {}
    for r in rows[heads[0] + 2:]:
        if len(r) <= max(name, dur, grid) or not r[dur]:
            continue
        agg.setdefault((r[name][:80], r[grid]), []).append(float(r[dur].replace(",", "")) * scale)
    total = 0.0
    for (k, g), v in agg.items():
        total += sum(v)
        print(f"{len(v):5d} x {sum(v) / len(v):9.1f} us  {k} {g}")
    print(f"total {total:.1f} us over {sum(len(v) for v in agg.values())} launches")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: ncu_summary.py NCU_CSV")
    main(sys.argv[1])
