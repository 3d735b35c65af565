#!/usr/bin/env python3
"""Decimation-policy sweep on the held-out haystacks (bench/quality/haystacks): passkey accuracy per source, length,
depth and policy, validation and test splits, written as counts with Wilson 95% intervals per split/policy/length.

The decimating layer of the shipped model is its last one, so layers 0..L-2 are shared by every policy: they run once
per prompt and only the last layer is re-run per policy (same tokens, same numbers as a full forward).
Policies at the last layer (filtering.py has the details):
  mamba          no decimation
  drop@K         DeciMamba: keep the top-K tokens by ||softplus(dt + bias)|| over channels (L_base = K, one layer)
  global@K/tau   LongMamba-style: "global" channels (slow decay) skip their tokens outside their own top-K delta
  lamb@K         LAMB-style: keep the top-K tokens by the SSM's own attention from the question (hidden attention)
  lambch@K       LAMB-style per channel: each channel takes in only its own top-K tokens by that attention
K may be `card`: the budget the shipped policy runs at that length (deciserve.json lBaseByLength, interpolated as
mamba/decimation.ts does), so every policy gets the same number of tokens.
Usage: python3 train/policy_sweep.py --model models/deciserve-mamba --out bench/results/policy-sweep.json
       python3 train/policy_sweep.py --smoke --out /tmp/smoke.json   # tiny random model on CPU (smoke_filtering.py)
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import HFTokenizer, Passkey, encode_corpus, haystack_text  # noqa: E402
from export import load_model  # noqa: E402
from filtering import global_channel_mixer, lamb_mixer, lbase_for_length  # noqa: E402
from mamba import Decimation, gather_time  # noqa: E402

DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
SETS = ["jargon", "gcide", "fortunes"]
ANSWER_TOKENS = 8
SEEDS = {"val": 777, "test": 2024}
Z95 = 1.959964


def parse_ks(text):
    return [x if x == "card" else int(x) for x in text.split(",") if x]


def policies(length, budgets, ks, global_ks, taus, lamb_ks):
    """(name, (family, K, tau) or None) for one length; `card` K is the shipped budget at that length."""
    k_of = lambda k: lbase_for_length(budgets, length) if k == "card" else k  # noqa: E731
    out = [("mamba", None)] + [(f"drop@{k}", ("drop", k_of(k), None)) for k in ks]
    out += [(f"global@{k}/{tau}", ("global", k_of(k), tau)) for k in global_ks for tau in taus]
    out += [(f"{fam}@{k}", (fam, k_of(k), None)) for k in lamb_ks for fam in ("lamb", "lambch")]
    return out


@torch.no_grad()
def prefix(model, ids, upto):
    """Layers [0, upto): the residual stream and last hidden entering layer `upto`, and each layer's final state."""
    hidden = model.backbone.embeddings(ids)
    residual, states = None, []
    for layer in model.backbone.layers[:upto]:
        residual = hidden.float() if residual is None else residual + hidden.float()
        hidden, state, _ = layer.mixer(layer.norm(residual.to(hidden.dtype)), None, 1)
        states.append(state)
    return residual, hidden, states


@torch.no_grad()
def last_layer(model, residual, hidden, policy, protect, train_len, cache):
    """The last layer under `policy`: final logits at the last position and that layer's state.
    `cache` (one dict per prompt batch) lets lamb@K and lambch@K share the attention scores."""
    layer = model.backbone.layers[-1]
    residual = residual + hidden.float()
    u = layer.norm(residual.to(hidden.dtype))
    kept = None
    if policy is None or policy[0] == "drop":
        deci = None if policy is None else (Decimation(layers=[len(model.backbone.layers) - 1], l_base=policy[1], beta=0.5, min_seq_len=20), 0)
        out, state, kept = layer.mixer(u, deci, protect)
    elif policy[0] == "global":
        out, state = global_channel_mixer(layer.mixer, u, policy[1], policy[2], protect, train_len)
    else:
        out, state, kept = lamb_mixer(layer.mixer, u, policy[1], protect, policy[0] == "lambch", cache)
    if kept is not None:
        residual = gather_time(residual, kept)
    final = model.backbone.norm_f((residual[:, -1:] + out[:, -1:].float()).to(hidden.dtype))
    return F.linear(final, model.backbone.embeddings.weight).float()[:, -1], state


@torch.no_grad()
def answers(model, logits, states):
    token = logits.argmax(-1)
    tokens = [token]
    for _ in range(ANSWER_TOKENS - 1):
        logits, states = model.step(token, states)
        token = logits.argmax(-1)
        tokens.append(token)
    return torch.stack(tokens, 1)


def wilson(k, n, z=Z95):
    """Wilson score interval (mamba/stats.ts wilsonInterval)."""
    if n == 0:
        return [0.0, 1.0]
    p, denom = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / denom, z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def summarize(counts):
    """split -> policy -> length -> correct, n, acc, wilson95 and per-depth [correct, n], over the three sources."""
    out = {}
    for split, sets in counts.items():
        for cells in sets.values():
            for pol, by_len in cells.items():
                for length, by_depth in by_len.items():
                    row = out.setdefault(split, {}).setdefault(pol, {}).setdefault(length, {"correct": 0, "n": 0, "by_depth": {}})
                    for d, (k, n) in by_depth.items():
                        row["correct"] += k
                        row["n"] += n
                        dd = row["by_depth"].setdefault(d, [0, 0])
                        dd[0] += k
                        dd[1] += n
    for pols in out.values():
        for by_len in pols.values():
            for row in by_len.values():
                row["acc"] = round(row["correct"] / row["n"], 4)
                row["wilson95"] = wilson(row["correct"], row["n"])
    return out


def table(summary, lengths, names):
    """Markdown: one row per split and length, one column per policy: accuracy % (Wilson 95%)."""
    lines = ["| split | length | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for split, pols in summary.items():
        for length in lengths:
            cells = [pols.get(p, {}).get(str(length)) for p in names]
            if not any(cells):
                continue
            fmt = lambda r: "–" if r is None else f"{100 * r['acc']:.0f} ({100 * r['wilson95'][0]:.0f}–{100 * r['wilson95'][1]:.0f})"  # noqa: E731
            lines.append(f"| {split} | {length:,} | " + " | ".join(fmt(c) for c in cells) + " |")
    return "\n".join(lines)


def save(args, device, meta, counts, started):
    """Written after every cell, so a run cut short keeps what it measured."""
    result = {"command": "python3 train/policy_sweep.py " + " ".join(sys.argv[1:]), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "precision": "fp32 (train/mamba.py, Triton scan)", "model": "tiny random (--smoke)" if args.smoke else args.model,
              "depths": DEPTHS, "seeds": SEEDS, **meta,
              "note": "policies with K >= the context drop nothing and are not run (equal to mamba); counts are "
                      "split/source/policy/length/depth -> [correct, n]; summary sums the sources",
              "counts": counts, "summary": summarize(counts), "seconds": round(time.time() - started, 1)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/deciserve-mamba")
    ap.add_argument("--haystacks", default="bench/quality/haystacks")
    ap.add_argument("--out", default="bench/results/policy-sweep.json")
    ap.add_argument("--lengths", default="1000,2000,4000,8000,16000,32000,64000,128000,256000")
    ap.add_argument("--ks", default="1000,1500,2000,3000,4000,6000,8000,12000,16000,24000,32000", help="drop@K budgets; `card` = the shipped one")
    ap.add_argument("--global-ks", default="2000,8000")
    ap.add_argument("--taus", default="1,8")
    ap.add_argument("--lamb-ks", default="", help="budgets for lamb@K and lambch@K; e.g. `card`")
    ap.add_argument("--samples", default="val=4,test=8", help="prompts per source x depth cell, per split (in this order)")
    ap.add_argument("--token-batch", type=int, default=600_000, help="prompt tokens per forward batch (1.5M ran out of memory at 32K on the H200)")
    ap.add_argument("--budget-s", type=float, default=0, help="skip a split x length whose predicted time would end past this many seconds")
    ap.add_argument("--smoke", action="store_true", help="tiny random model and random haystacks on CPU (no model files)")
    args = ap.parse_args()
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.smoke:
        from smoke_filtering import smoke_setup
        model, task, hays_for, budgets, train_len = smoke_setup(device)
    else:
        model = load_model(args.model, device)
        tok = HFTokenizer(os.path.join(args.model, "tokenizer.json"))
        task = Passkey(tok)
        card = json.load(open(os.path.join(args.model, "deciserve.json")))
        train_len = card.get("trainingLength", card.get("training_length"))  # the older cards' snake_case key
        budgets = card["decimation"].get("lBaseByLength", [[1, card["decimation"]["lBase"]]])
        hays_for = lambda split: {s: encode_corpus(tok, haystack_text(open(os.path.join(args.haystacks, f"{s}-{split}.txt"), encoding="utf-8").read())) for s in SETS}  # noqa: E731
    lengths = [int(x) for x in args.lengths.split(",")]
    ks, global_ks, lamb_ks = parse_ks(args.ks), parse_ks(args.global_ks), parse_ks(args.lamb_ks)
    taus = [float(x) for x in args.taus.split(",") if x]
    names = [p for p, _ in policies(lengths[0], budgets, ks, global_ks, taus, lamb_ks)]
    samples = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.samples.split(",")}
    protect = len(task.question)
    meta = {"lengths": lengths, "samples_per_cell": samples, "protect": protect, "policies": names,
            "k_by_length": {str(L): lbase_for_length(budgets, L) for L in lengths}, "budget_s": args.budget_s, "skipped": []}
    hays = {split: hays_for(split) for split in samples}
    n_layer = len(model.backbone.layers)
    counts = {}  # split/set/policy/length/depth -> [correct, n]
    rate, work_s, work_tokens = None, 0.0, 0  # measured seconds per prompt token, for --budget-s
    for length in lengths:
        pols = policies(length, budgets, ks, global_ks, taus, lamb_ks)
        for split, n in samples.items():
            tokens = n * len(DEPTHS) * len(SETS) * length
            if args.budget_s and rate is not None and time.time() - started + rate * tokens > args.budget_s:
                meta["skipped"].append({"split": split, "length": length, "predicted_s": round(rate * tokens, 1)})
                print(f"{split:>4} L={length:>6}: skipped, predicted {rate * tokens:.0f} s past --budget-s {args.budget_s:.0f}", flush=True)
                continue
            t_unit = time.time()
            for set_name, hay in hays[split].items():
                t0 = time.time()
                rng = np.random.default_rng([SEEDS[split], length, SETS.index(set_name)])
                cells = [(d, int(rng.integers(10000, 100000)), int(rng.integers(0, len(hay)))) for d in DEPTHS for _ in range(n)]
                batch = max(1, min(len(cells), args.token_batch // length))
                for b in range(0, len(cells), batch):
                    chunk = cells[b:b + batch]
                    ids = torch.from_numpy(np.stack([task.prompt(hay, length, d, key, off) for d, key, off in chunk])).to(device)
                    residual, hidden, states = prefix(model, ids, n_layer - 1)
                    del ids
                    cache = {}
                    for name, pol in pols:
                        if pol is not None and pol[1] >= length - protect:
                            continue  # nothing dropped: same as mamba
                        logits, state = last_layer(model, residual, hidden, pol, protect, train_len, cache)
                        toks = answers(model, logits, states + [state])
                        for (d, key, _), t in zip(chunk, toks.tolist()):
                            cell = counts.setdefault(split, {}).setdefault(set_name, {}).setdefault(name, {}).setdefault(str(length), {}).setdefault(str(d), [0, 0])
                            cell[0] += int(task.correct(t, key))
                            cell[1] += 1
                    del residual, hidden, states, cache
                    if device == "cuda":
                        torch.cuda.empty_cache()
                acc = lambda p: sum(c[0] for c in counts[split][set_name].get(p, {}).get(str(length), {}).values()) / (n * len(DEPTHS))  # noqa: E731
                shown = "  ".join(f"{p} {acc(p):.2f}" for p, _ in pols if str(length) in counts[split][set_name].get(p, {}))
                save(args, device, meta, counts, started)
                print(f"{split:>4} {set_name:>8} L={length:>6}: {shown}  ({time.time() - t0:.1f}s)", flush=True)
            work_s, work_tokens = work_s + time.time() - t_unit, work_tokens + tokens
            rate = work_s / work_tokens
    result = save(args, device, meta, counts, started)
    print(f"wrote {args.out} in {result['seconds']} s")
    print(table(result["summary"], lengths, names))


if __name__ == "__main__":
    main()
