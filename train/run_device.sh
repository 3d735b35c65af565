#!/usr/bin/env bash
# The whole GPU run for the shipped checkpoint: tokenizer -> train -> export -> evaluate -> fixtures -> HF check.
# Run from the repo root on a CUDA machine with torch, triton, tokenizers and transformers, with .corpus/ prepared by
# train/prepare_data.py (carry it along). Stages that already finished (their outputs exist in $WORK) are skipped, so
# the script can be started again after an interruption.
#   TRAIN_MINUTES=11 WORK=/tmp/deciserve-train bash train/run_device.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
WORK=${WORK:-/tmp/deciserve-train}
MODEL=models/deciserve-mamba
mkdir -p "$WORK" bench/results
# INIT_FROM=<exported model dir> continues from an earlier export and keeps its tokenizer.
[ -n "${INIT_FROM:-}" ] && [ ! -s "$WORK/tokenizer.json" ] && cp "$INIT_FROM/tokenizer.json" "$WORK/tokenizer.json" && cp -r "$INIT_FROM" "$WORK/init"
[ -s "$WORK/tokenizer.json" ] || python3 train/tokenizer_train.py --data .corpus --vocab 4096 --out "$WORK/tokenizer.json"
if [ ! -e "$WORK/trained" ]; then
  resume=(); [ -s "$WORK/ckpt.pt" ] && resume=(--resume "$WORK/ckpt.pt")
  [ -z "${resume[*]}" ] && [ -n "${INIT_FROM:-}" ] && resume=(--init-from "$WORK/init")
  python3 train/train.py --data .corpus --tokenizer "$WORK/tokenizer.json" --out "$WORK/ckpt.pt" \
    --minutes "${TRAIN_MINUTES:-11}" --log "$WORK/train-log.jsonl" "${resume[@]}" ${TRAIN_ARGS:-}
  touch "$WORK/trained"
fi
python3 train/export.py --ckpt "$WORK/ckpt.pt" --tokenizer "$WORK/tokenizer.json" --data .corpus --out "$MODEL"
cp "$WORK/train-log.jsonl" bench/results/train-log.jsonl
python3 train/evaluate.py --model "$MODEL" --results bench/results ${EVAL_ARGS:-}
python3 train/fixtures.py --model "$MODEL" --out test/fixtures
python3 train/hf_check.py --model "$MODEL" --out bench/results/hf-parity.json || echo "hf_check failed (see above)"
touch "$WORK/done"
