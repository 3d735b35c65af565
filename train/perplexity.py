#!/usr/bin/env python3
"""Held-out perplexity per source and context length, plain Mamba vs DeciMamba (the model's length-adaptive policy).

Protocol (the model card's): the last 100 tokens of 10 windows drawn from the held-out split, fp32, no TF32. Each
source's held-out documents are in .corpus/heldout/<source>.txt (train/prepare_data.py); "all" is their union.
Usage: python3 train/perplexity.py --model models/deciserve-mamba --out bench/results/perplexity-heldout.json
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import HFTokenizer, encode_corpus  # noqa: E402
from evaluate import perplexity  # noqa: E402
from export import load_model  # noqa: E402
from filtering import lbase_for_length  # noqa: E402  (the engines' budget rule, written once)
from mamba import Decimation  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/deciserve-mamba")
    ap.add_argument("--data", default=".corpus")
    ap.add_argument("--lengths", default="1000,2000,4000,8000,16000,32000")
    ap.add_argument("--windows", type=int, default=10)
    ap.add_argument("--out", default="bench/results/perplexity-heldout.json")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device)
    tok = HFTokenizer(os.path.join(args.model, "tokenizer.json"))
    meta = json.load(open(os.path.join(args.model, "deciserve.json")))
    base = meta["decimation"]
    sources = {"all": os.path.join(args.data, "heldout.txt")}
    sources.update({os.path.basename(p)[:-4]: p for p in sorted(glob.glob(os.path.join(args.data, "heldout", "*.txt")))})
    lengths = [int(x) for x in args.lengths.split(",")]
    started, table = time.time(), {}
    for name, path in sources.items():
        stream = encode_corpus(tok, open(path, encoding="utf-8").read())
        table[name] = {"tokens": int(len(stream)), "mamba": {}, "decimamba": {}}
        for length in lengths:
            if length + 1 >= len(stream):
                continue
            deci = Decimation(layers=base["layers"], beta=base["beta"], min_seq_len=base["minSeqLen"],
                              l_base=lbase_for_length(base["lBaseByLength"], length) if "lBaseByLength" in base else base["lBase"])
            for variant, d in (("mamba", None), ("decimamba", deci)):
                rng = np.random.default_rng([99, length])
                table[name][variant][str(length)] = round(perplexity(model, stream, length, args.windows, rng, d, device), 1)
        print(f"{name:>12} ({len(stream):>9,} tok): mamba {table[name]['mamba']}  decimamba {table[name]['decimamba']}", flush=True)
    result = {"command": "python3 train/perplexity.py " + " ".join(sys.argv[1:]),
              "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "precision": "fp32 (no TF32)",
              "protocol": f"last 100 tokens of {args.windows} held-out windows per cell", "model": args.model,
              "decimation": base, "perplexity": table, "seconds": round(time.time() - started, 1)}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
