#!/usr/bin/env python3
"""Decimation-policy sweep on the held-out haystacks (bench/quality/haystacks): passkey accuracy per source, length,
depth and policy, validation and test splits, written as counts so intervals can be computed.

The decimating layer of the shipped model is its last one, so layers 0..L-2 are shared by every policy: they run once
per prompt and only the last layer is re-run per policy (same tokens, same numbers as a full forward).
Policies at the last layer:
  mamba          no decimation
  drop@K         DeciMamba: keep the top-K tokens by ||softplus(dt + bias)|| over channels (L_base = K, one layer)
  global@K/tau   LongMamba-style: only "global" channels (receptive field beyond the training length: the slowest
                 state's mean decay mean_t(delta)*min|A| * L_train < tau) skip their tokens outside their own top-K
                 delta (delta set to 0 there, so the state passes through); local channels see every token.
Usage: python3 train/policy_sweep.py --model models/deciserve-mamba --out bench/results/policy-sweep.json
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
from mamba import Decimation, gather_time  # noqa: E402

DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]
SETS = ["jargon", "gcide", "fortunes"]
ANSWER_TOKENS = 8
SEEDS = {"val": 777, "test": 2024}


def policies(ks, global_ks, taus):
    out = [("mamba", None)] + [(f"drop@{k}", ("drop", k, None)) for k in ks]
    out += [(f"global@{k}/{tau}", ("global", k, tau)) for k in global_ks for tau in taus]
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
def last_layer(model, residual, hidden, policy, protect, train_len):
    """The last layer under `policy`: final logits at the last position and that layer's state."""
    layer = model.backbone.layers[-1]
    residual = residual + hidden.float()
    u = layer.norm(residual.to(hidden.dtype))
    if policy is None or policy[0] == "drop":
        deci = None if policy is None else (Decimation(layers=[len(model.backbone.layers) - 1], l_base=policy[1], beta=0.5, min_seq_len=20), 0)
        out, state, kept = layer.mixer(u, deci, protect)
        if kept is not None:
            residual = gather_time(residual, kept)
    else:
        out, state = global_channel_mixer(layer.mixer, u, policy[1], policy[2], protect, train_len)
    final = model.backbone.norm_f((residual[:, -1:] + out[:, -1:].float()).to(hidden.dtype))
    return F.linear(final, model.backbone.embeddings.weight).float()[:, -1], state


def global_channel_mixer(m, u, k, tau, protect, train_len):
    cfg, L = m.cfg, u.shape[1]
    x, z = m.in_proj(u).chunk(2, dim=-1)
    conv_state = x[:, -cfg.d_conv:].transpose(1, 2)
    x = F.silu(m.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))
    dt, B, C = m.x_proj(x).split([cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
    delta = F.softplus(m.dt_proj(dt).float())
    context = L - min(protect, L)
    if context > k:
        a_min = torch.exp(m.A_log.float()).min(-1).values                     # [D], slowest-decaying state
        decay = delta[:, :context].mean(1) * a_min * train_len                  # [B, D]
        is_global = decay < tau
        kth = delta[:, :context].topk(k, dim=1).values[:, -1:]                  # [B, 1, D], each channel's own K-th
        drop = (delta[:, :context] < kth) & is_global[:, None, :]
        delta = torch.cat([delta[:, :context].masked_fill(drop, 0.0), delta[:, context:]], dim=1)
    y, ssm_state = m.selective_scan(x.float(), delta, B.float(), C.float())
    y = y * F.silu(z.float())
    return m.out_proj(y.to(u.dtype)), (conv_state.float(), ssm_state)


@torch.no_grad()
def answers(model, logits, states):
    token = logits.argmax(-1)
    tokens = [token]
    for _ in range(ANSWER_TOKENS - 1):
        logits, states = model.step(token, states)
        token = logits.argmax(-1)
        tokens.append(token)
    return torch.stack(tokens, 1)


def save(args, device, lengths, samples, protect, pols, counts, started):
    """Written after every cell, so a run cut short keeps what it measured."""
    result = {"command": "python3 train/policy_sweep.py " + " ".join(sys.argv[1:]), "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
              "precision": "fp32 (train/mamba.py, Triton scan)", "model": args.model, "depths": DEPTHS, "lengths": lengths,
              "samples_per_cell": samples, "seeds": SEEDS, "protect": protect, "policies": [p for p, _ in pols],
              "note": "policies with K >= length drop nothing and are not run (equal to mamba)",
              "counts": counts, "seconds": round(time.time() - started, 1)}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return result["seconds"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/deciserve-mamba")
    ap.add_argument("--haystacks", default="bench/quality/haystacks")
    ap.add_argument("--out", default="bench/results/policy-sweep.json")
    ap.add_argument("--lengths", default="1000,2000,4000,8000,16000,32000,64000,128000,256000")
    ap.add_argument("--ks", default="1000,1500,2000,3000,4000,6000,8000,12000,16000,24000,32000")
    ap.add_argument("--global-ks", default="2000,8000")
    ap.add_argument("--taus", default="1,8")
    ap.add_argument("--samples", default="val=4,test=8", help="prompts per source x depth cell, per split")
    ap.add_argument("--token-batch", type=int, default=1_500_000, help="prompt tokens per forward batch")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model, device)
    tok = HFTokenizer(os.path.join(args.model, "tokenizer.json"))
    pk = Passkey(tok)
    card = json.load(open(os.path.join(args.model, "deciserve.json")))
    train_len = card.get("trainingLength", card.get("training_length"))  # the older cards' snake_case key
    lengths = [int(x) for x in args.lengths.split(",")]
    pols = policies([int(x) for x in args.ks.split(",")], [int(x) for x in args.global_ks.split(",")], [float(x) for x in args.taus.split(",")])
    samples = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in args.samples.split(",")}
    n_layer = len(model.backbone.layers)
    protect = len(pk.question)
    counts = {}  # split/set/policy/length/depth -> [correct, n]
    started = time.time()
    for split, n in samples.items():
        hays = {s: encode_corpus(tok, haystack_text(open(os.path.join(args.haystacks, f"{s}-{split}.txt"), encoding="utf-8").read())) for s in SETS}
        for length in lengths:
            for set_name, hay in hays.items():
                t0 = time.time()
                rng = np.random.default_rng([SEEDS[split], length, SETS.index(set_name)])
                cells = [(d, int(rng.integers(10000, 100000)), int(rng.integers(0, len(hay)))) for d in DEPTHS for _ in range(n)]
                batch = max(1, min(len(cells), args.token_batch // length))
                for b in range(0, len(cells), batch):
                    chunk = cells[b:b + batch]
                    ids = torch.from_numpy(np.stack([pk.prompt(hay, length, d, key, off) for d, key, off in chunk])).to(device)
                    residual, hidden, states = prefix(model, ids, n_layer - 1)
                    del ids
                    for name, pol in pols:
                        if pol is not None and pol[1] >= length:
                            continue  # nothing dropped: same as mamba
                        logits, state = last_layer(model, residual, hidden, pol, protect, train_len)
                        toks = answers(model, logits, states + [state])
                        for (d, key, _), t in zip(chunk, toks.tolist()):
                            cell = counts.setdefault(split, {}).setdefault(set_name, {}).setdefault(name, {}).setdefault(str(length), {}).setdefault(str(d), [0, 0])
                            cell[0] += int(pk.correct(t, key))
                            cell[1] += 1
                    del residual, hidden, states
                    torch.cuda.empty_cache()
                acc = lambda p: sum(c[0] for c in counts[split][set_name].get(p, {}).get(str(length), {}).values()) / (n * len(DEPTHS))  # noqa: E731
                best = max((p for p, _ in pols if str(length) in counts[split][set_name].get(p, {})), key=acc)
                save(args, device, lengths, samples, protect, pols, counts, started)
                print(f"{split:>4} {set_name:>8} L={length:>6}: mamba {acc('mamba'):.2f}  best {best} {acc(best):.2f}  ({time.time() - t0:.1f}s)", flush=True)
    print(f"wrote {args.out} in {save(args, device, lengths, samples, protect, pols, counts, started)} s")


if __name__ == "__main__":
    main()
