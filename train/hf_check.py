#!/usr/bin/env python3
"""Cross-checks an exported folder against HF transformers' MambaForCausalLM (a third implementation):
the same weights must give the same logits. Usage: python3 train/hf_check.py --model models/deciserve-mamba --out F.json
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import load_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from transformers import MambaForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    ours = load_model(args.model, device)
    hf = MambaForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
    ids = torch.randint(0, ours.cfg.vocab_size, (1, 300), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        a = ours(ids)["logits"]
        b = hf(ids).logits.float()
    diff = (a - b).abs().max().item()
    res = {"command": "python3 train/hf_check.py --model " + args.model, "transformers_max_abs_logit_diff": diff,
           "tokens": 300, "same_argmax": bool((a.argmax(-1) == b.argmax(-1)).all())}
    print(json.dumps(res))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
