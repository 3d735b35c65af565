#!/usr/bin/env bash
# The whole GPU run for the shipped checkpoint: tokenizer -> train -> export -> evaluate -> fixtures -> HF check.
# Run from the repo root on a CUDA machine with torch, triton, tokenizers and transformers, with .corpus/ prepared by
# train/prepare_data.py (carry it along). Stages that already finished (their outputs exist in $WORK) are skipped, so
# the script can be started again after an interruption.
#   TRAIN_MINUTES=11 WORK=/tmp/deciserve-train bash train/run_device.sh
# EVALUATE=heldout evaluates on the held-out haystack sets (perplexity.py, policy_sweep.py) instead of evaluate.py.
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
# A continued run keeps the decimation settings of the model it started from (layer and length budgets).
[ -n "${INIT_FROM:-}" ] && python3 -c "import json,sys; a,b=sys.argv[1:]; m=json.load(open(b)); m['decimation']=json.load(open(a))['decimation']; json.dump(m,open(b,'w'),indent=2)" "$WORK/init/deciserve.json" "$MODEL/deciserve.json"
if [ "${EVALUATE:-passkey}" = heldout ]; then
  # held-out sets only: perplexity per source, then the budget sweep on the validation split (one after the other:
  # side by side they ran out of the H100's 80 GB); the budgets chosen on validation then go into the exported card
  python3 train/perplexity.py --model "$MODEL" --out bench/results/perplexity-heldout.json || echo "perplexity failed"
  if python3 train/policy_sweep.py --model "$MODEL" --out bench/results/policy-sweep-val.json ${SWEEP_ARGS:-}; then
    python3 bench/quality/choose_policy.py bench/results/policy-sweep-val.json --apply "$MODEL" > bench/results/policy-choice.json
  else
    echo "sweep failed: the card keeps the budgets it started with"
  fi
else
  python3 train/evaluate.py --model "$MODEL" --results bench/results ${EVAL_ARGS:-}
fi
python3 train/fixtures.py --model "$MODEL" --out test/fixtures
python3 train/hf_check.py --model "$MODEL" --out bench/results/hf-parity.json || echo "hf_check failed (see above)"
touch "$WORK/done"
