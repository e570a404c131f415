#!/usr/bin/env python3
# Shrinks a byte-level BPE tokenizer.json for use as a test fixture: keeps vocab ids below --keep
# (plus the 256 byte symbols and all added tokens) and only merges whose parts and result survive.
# The result is still a valid HF tokenizer; its expected outputs are regenerated with HF tokenizers.
# Usage: python3 scripts/tokenizer_trim.py IN.json OUT.json --keep 24000 [--ignore-merges]
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("src")
ap.add_argument("dst")
ap.add_argument("--keep", type=int, default=24000)
ap.add_argument("--ignore-merges", action="store_true", help="set model.ignore_merges = true")
args = ap.parse_args()

with open(args.src, encoding="utf-8") as f:
    tj = json.load(f)
model = tj["model"]
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
alphabet, n = [], 0
for b in range(256):
    alphabet.append(chr(b) if b in bs else chr(256 + n))
    n += b not in bs
vocab = {t: i for t, i in model["vocab"].items() if i < args.keep or t in alphabet}
merges = []
for m in model["merges"]:
    a, b = m.split(" ", 1) if isinstance(m, str) else m
    if a in vocab and b in vocab and (a + b) in vocab:
        merges.append(m)
model["vocab"] = vocab
model["merges"] = merges
if args.ignore_merges:
    model["ignore_merges"] = True
with open(args.dst, "w", encoding="utf-8") as f:
    json.dump(tj, f, ensure_ascii=False, indent=1)
print(f"{args.dst}: {len(vocab)} vocab, {len(merges)} merges")
