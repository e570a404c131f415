#!/usr/bin/env bash
# One GPU-machine session: regenerate the transformers reference fixtures and train the bundled
# default model. Expects the corpus from scripts/default_model/prepare_corpus.sh in .corpus/.
# Results land in $OUT (fixtures.tar.gz, default_model.tar.gz.part-*, logs).
set -uo pipefail
OUT=${OUT:-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
python3 -c 'import torch, transformers, tokenizers; print("torch", torch.__version__, "transformers", transformers.__version__, "tokenizers", tokenizers.__version__, torch.cuda.get_device_name())' 2>&1 | tee "$OUT/env.log"
rm -rf /tmp/fx && python3 scripts/make_fixtures.py --out /tmp/fx 2>&1 | tee "$OUT/fixtures.log"
tar -C /tmp/fx -czf "$OUT/fixtures.tar.gz" .
MIN=${TRAIN_MINUTES:-6}
rm -rf /tmp/dm && timeout $(( ${MIN%.*} * 60 + 150 )) python3 scripts/default_model/train.py --corpus .corpus --out /tmp/dm \
  --minutes "$MIN" 2>&1 | tee "$OUT/train.log"
if [ -d /tmp/dm ]; then
  tar -C /tmp/dm -czf /tmp/dm.tar.gz . && split -b 15M /tmp/dm.tar.gz "$OUT/default_model.tar.gz.part-"
fi
ls -la "$OUT"
