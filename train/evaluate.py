#!/usr/bin/env python3
"""Passkey retrieval and perplexity against context length, plain Mamba vs DeciMamba, on an exported model.

Protocol (as in the paper): needle depths 0..1, fresh keys and haystack offsets from the held-out split, greedy
answer. First sweeps the single decimating layer (and optionally L_base) on a validation draw (its own seed), then evaluates plain Mamba,
DeciMamba at the middle layer (the paper's default placement) and at the best sweep layer on the test draw.
Usage: python3 train/evaluate.py --model models/deciserve-mamba --results bench/results [--samples 10]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import HFTokenizer, Passkey, encode_corpus  # noqa: E402
from export import load_model  # noqa: E402
from mamba import Decimation  # noqa: E402

DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
LENGTHS = [1000, 2000, 4000, 8000, 16000, 32000, 50000, 64000, 128000]
PPL_LENGTHS = [1000, 2000, 4000, 8000, 16000, 32000, 64000]


def passkey_cell(model, pk, hay, length, depth, n, rng, deci, device):
    keys = [int(k) for k in rng.integers(10000, 100000, n)]
    prompts = [pk.prompt(hay, length, depth, k, int(rng.integers(0, len(hay)))) for k in keys]
    ids = torch.from_numpy(np.stack(prompts)).to(device)
    tokens, _ = model.greedy(ids, 8, decimation=deci, protect=len(pk.question))
    return sum(pk.correct(t.tolist(), k) for t, k in zip(tokens, keys)) / n


def passkey_table(model, pk, hay, lengths, n, seed, deci, device, label):
    rng = np.random.default_rng(seed)
    table = {}
    for length in lengths:
        t0 = time.time()
        table[str(length)] = {str(d): passkey_cell(model, pk, hay, length, d, n, rng, deci, device) for d in DEPTHS}
        mean = np.mean(list(table[str(length)].values()))
        print(f"  {label:>18} L={length:>6}: mean {mean:.2f} {table[str(length)]} ({time.time() - t0:.1f}s)", flush=True)
    return table


def mean_acc(table, length):
    return float(np.mean(list(table[str(length)].values())))


def perplexity(model, stream, length, windows, rng, deci, device, scored=100):
    starts = rng.integers(0, len(stream) - length, windows)
    ids = torch.from_numpy(np.stack([stream[s:s + length] for s in starts]).astype(np.int64)).to(device)
    with torch.no_grad():
        out = model(ids, decimation=deci, protect=scored + 1, last_n=scored + 1)
    logp = torch.log_softmax(out["logits"][:, :-1].double(), -1)
    nll = -logp.gather(-1, ids[:, -scored:, None]).squeeze(-1)
    return float(torch.exp(nll.mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--data", default=".corpus")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    ap.add_argument("--sweep-lengths", default="16000,32000,64000")
    ap.add_argument("--sweep-samples", type=int, default=4)
    ap.add_argument("--sweep-layers", default=None, help="comma list; default all layers")
    ap.add_argument("--sweep-lbase", default=None, help="comma list of L_base values to sweep with each layer; default the model's")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device)
    tok = HFTokenizer(os.path.join(args.model, "tokenizer.json"))
    pk = Passkey(tok)
    with open(os.path.join(args.model, "haystack.txt"), encoding="utf-8") as f:
        hay = encode_corpus(tok, f.read())
    with open(os.path.join(args.data, "heldout.txt"), encoding="utf-8") as f:
        heldout = encode_corpus(tok, f.read())
    meta_path = os.path.join(args.model, "deciserve.json")
    meta = json.load(open(meta_path))
    base = meta["decimation"]
    lengths = [int(x) for x in args.lengths.split(",")]
    n_layer = model.cfg.n_layer
    started = time.time()

    print("layer x L_base sweep (validation draw)", flush=True)
    sweep = {}
    sweep_layers = [int(x) for x in args.sweep_layers.split(",")] if args.sweep_layers else list(range(n_layer))
    sweep_lbase = [int(x) for x in args.sweep_lbase.split(",")] if args.sweep_lbase else [base["lBase"]]
    grid = [(layer, lb) for layer in sweep_layers for lb in sweep_lbase]
    key = lambda layer, lb: str(layer) if lb == base["lBase"] else f"{layer}@{lb}"  # noqa: E731
    for layer, lb in grid:
        deci = Decimation(layers=[layer], beta=base["beta"], l_base=lb, min_seq_len=base["minSeqLen"])
        t = passkey_table(model, pk, hay, [int(x) for x in args.sweep_lengths.split(",")], args.sweep_samples, 777, deci, device, f"layer {layer} L_base {lb}")
        sweep[key(layer, lb)] = float(np.mean([np.mean(list(v.values())) for v in t.values()]))
    # ties go to the paper's defaults: the layer nearest the middle, then the model's L_base
    best, best_lb = max(grid, key=lambda g: (sweep[key(*g)], -abs(g[0] - n_layer // 2), g[1] == base["lBase"]))
    print(f"best decimating layer: {best}, L_base {best_lb} ({sweep[key(best, best_lb)]:.2f})", flush=True)

    best_name = f"decimamba_layer{best}" + ("" if best_lb == base["lBase"] else f"_lbase{best_lb}")
    variants = {
        "mamba": None,
        f"decimamba_layer{n_layer // 2}": Decimation(layers=[n_layer // 2], beta=base["beta"], l_base=base["lBase"], min_seq_len=base["minSeqLen"]),
        best_name: Decimation(layers=[best], beta=base["beta"], l_base=best_lb, min_seq_len=base["minSeqLen"]),
    }
    passkey = {}
    for name, deci in variants.items():
        print(f"passkey: {name}", flush=True)
        passkey[name] = passkey_table(model, pk, hay, lengths, args.samples, 2024, deci, device, name)

    print("perplexity (last 100 tokens of held-out windows)", flush=True)
    ppl = {}
    for name, deci in variants.items():
        rng = np.random.default_rng(99)
        ppl[name] = {}
        for length in PPL_LENGTHS:
            if length + 1 < len(heldout):
                ppl[name][str(length)] = perplexity(model, heldout, length, 10, rng, deci, device)
        print(f"  {name:>18}: {ppl[name]}", flush=True)

    meta["decimation"] = dict(base, layers=[best], lBase=best_lb)
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    command = "python3 train/evaluate.py " + " ".join(sys.argv[1:]) + " (via bash train/run_device.sh)"
    device_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    os.makedirs(args.results, exist_ok=True)
    result = {"command": command, "device": device_name, "model": args.model, "samples_per_cell": args.samples,
              "depths": DEPTHS, "lengths": lengths, "layer_sweep_mean_acc": sweep, "best_layer": best,
              "best_lbase": best_lb, "decimation": meta["decimation"], "passkey": passkey, "perplexity": ppl,
              "eval_seconds": round(time.time() - started, 1)}
    with open(os.path.join(args.results, "passkey-perplexity.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(summary_markdown(result), flush=True)


def summary_markdown(r):
    names = list(r["passkey"].keys())
    lines = ["| context | " + " | ".join(f"{n} passkey" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for length in r["lengths"]:
        lines.append(f"| {length:,} | " + " | ".join(f"{mean_acc(r['passkey'][n], length):.0%}" for n in names) + " |")
    lines += ["", "| context | " + " | ".join(f"{n} ppl" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for length in PPL_LENGTHS:
        if str(length) in r["perplexity"][names[0]]:
            lines.append(f"| {length:,} | " + " | ".join(f"{r['perplexity'][n][str(length)]:.2f}" for n in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
