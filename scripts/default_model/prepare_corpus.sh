#!/usr/bin/env bash
# Builds the training corpus of the bundled default model from freely licensed English text in
# Debian packages: the King James Bible (bible-kjv, public domain) and the fortune cookie files of
# fortunes-min / fortunes (BSD-style licence; the offensive set, packaged separately, is not used).
# Output: OUT_DIR/train.txt and OUT_DIR/heldout.txt (the Revelation of John plus every 20th fortune).
set -euo pipefail
OUT=${1:-corpus}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
command -v bible >/dev/null || $SUDO apt-get install -y -qq bible-kjv >/dev/null
(cd "$work" && apt-get download -qq fortunes-min fortunes >/dev/null 2>&1 && for f in *.deb; do dpkg -x "$f" x; done)

# Bible: one verse per line, verse numbers and chapter headings removed; chapters separated by blank lines.
bible -l0 "Gen1:1-Rev22:21" 2>/dev/null | python3 -c '
import re, sys
book = None
train, held = [], []
for line in sys.stdin:
    line = line.rstrip()
    m = re.match(r"^(\S.*) (\d+)$", line)
    if m:
        book = m.group(1)
        (held if book.startswith("Revelation") else train).append("")
        continue
    m = re.match(r"^\s+\d+ (.*)$", line)
    if m:
        (held if book and book.startswith("Revelation") else train).append(m.group(1))
open(sys.argv[1], "w").write("\n".join(train).strip() + "\n")
open(sys.argv[2], "w").write("\n".join(held).strip() + "\n")
' "$work/kjv_train.txt" "$work/kjv_held.txt"

# Fortunes: entries are separated by lines holding a single %; UTF-8 versions (*.u8) are used.
python3 - "$work/x/usr/share/games/fortunes" "$work/f_train.txt" "$work/f_held.txt" <<'PY'
import os, sys
src, tr, he = sys.argv[1:4]
entries = []
for name in sorted(os.listdir(src)):
    if not name.endswith(".u8") or name.startswith("ascii-art"):
        continue
    text = open(os.path.join(src, name), encoding="utf-8", errors="replace").read()
    entries += [e.strip("\n") for e in text.split("\n%\n") if e.strip()]
open(tr, "w").write("\n\n".join(e for i, e in enumerate(entries) if i % 20) + "\n")
open(he, "w").write("\n\n".join(e for i, e in enumerate(entries) if i % 20 == 0) + "\n")
PY
cat "$work/kjv_train.txt" "$work/f_train.txt" > "$OUT/train.txt"
cat "$work/kjv_held.txt" "$work/f_held.txt" > "$OUT/heldout.txt"
wc -c "$OUT/train.txt" "$OUT/heldout.txt"
