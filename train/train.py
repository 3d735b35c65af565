#!/usr/bin/env python3
"""Trains deciserve's default Mamba at 2,048 tokens on text + passkey retrieval, within a wall-clock budget.

bf16 autocast with fp32 master weights; AdamW; linear warm-up then cosine decay over the time budget; a curriculum
that grows the passkey prompt length to the full window over the first 30% of the run.
Usage: python3 train/train.py --data .corpus --tokenizer T.json --out ckpt.pt [--minutes 11] [--resume ckpt.pt]
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import HFTokenizer, TrainingBatches, encode_corpus, haystack_text  # noqa: E402
from mamba import MambaConfig, MambaLM  # noqa: E402


def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or name.endswith(("A_log", "D")) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=".corpus")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=11.0)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--passkey-fraction", type=float, default=0.5)
    ap.add_argument("--answer-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--resume")
    ap.add_argument("--init-from", help="start from an exported model folder (fresh optimiser and schedule)")
    ap.add_argument("--curriculum-start", type=int, default=256, help="longest passkey prompt at the start")
    ap.add_argument("--curriculum-frac", type=float, default=0.3, help="fraction of the run to reach seq-len")
    ap.add_argument("--log", default=None)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = HFTokenizer(args.tokenizer)
    text = open(os.path.join(args.data, "train.txt"), encoding="utf-8").read()
    t0 = time.time()
    stream = encode_corpus(tok, text)
    hay = encode_corpus(tok, haystack_text(text))
    print(f"train stream {len(stream):,} tokens, haystack {len(hay):,} ({time.time() - t0:.1f}s)", flush=True)

    cfg = MambaConfig(d_model=args.d_model, n_layer=args.n_layer, vocab_size=tok.tok.get_vocab_size())
    cfg.vocab_size = int(math.ceil(cfg.vocab_size / 8) * 8)
    model = MambaLM(cfg).to(device)
    step0, elapsed0 = 0, 0.0
    if args.resume:
        ck = torch.load(args.resume, map_location=device)
        model.load_state_dict(ck["model"])
        step0, elapsed0 = ck["step"], ck["elapsed"]
    if args.init_from:
        from export import load_model

        model.load_state_dict(load_model(args.init_from, device).state_dict())
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {cfg} params {n_params:,}", flush=True)
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=args.lr, betas=(0.9, 0.95), **({"fused": True} if device == "cuda" else {}))
    batches = TrainingBatches(tok, stream, hay, args.seq_len, args.passkey_fraction, args.seed + step0)
    budget = args.minutes * 60 + elapsed0
    log = open(args.log, "a") if args.log else None
    step, start, warmup = step0, time.time() - elapsed0, 100 if args.init_from else 200
    ema, last_save = None, time.time()
    while True:
        elapsed = time.time() - start
        frac = min(elapsed / budget, 1.0)
        if frac >= 1.0:
            break
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        c0 = args.curriculum_start
        max_prompt = int(c0 + (args.seq_len - c0) * min(1.0, frac / args.curriculum_frac))
        x, y, answer_mask = batches.batch(args.batch, max_prompt, device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            logits = model(x)["logits"]
        losses = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1), reduction="none").view_as(y)
        lm_loss = losses.mean()
        n_ans = answer_mask.sum().clamp(min=1)
        ans_loss = (losses * answer_mask).sum() / n_ans
        loss = lm_loss + args.answer_weight * ans_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == step0 + 1:
            ans_acc = (((logits.argmax(-1) == y).float() * answer_mask).sum() / n_ans).item()
            rec = {"step": step, "elapsed_s": round(time.time() - start, 1), "lr": lr, "loss": round(lm_loss.item(), 4),
                   "answer_loss": round(ans_loss.item(), 4), "answer_token_acc": round(ans_acc, 3),
                   "grad_norm": round(grad_norm.item(), 3), "max_prompt": max_prompt}
            ema = rec["loss"] if ema is None else 0.9 * ema + 0.1 * rec["loss"]
            print(json.dumps(rec), flush=True)
            if log:
                log.write(json.dumps(rec) + "\n")
                log.flush()
        if time.time() - last_save > 120:  # a lost machine costs at most two minutes of training
            save(model, cfg, step, time.time() - start, args, n_params)
            last_save = time.time()
    tokens = (step - step0) * args.batch * args.seq_len
    print(f"done: {step} steps, {tokens:,} tokens this run, {time.time() - start:.0f}s total", flush=True)
    save(model, cfg, step, time.time() - start, args, n_params)


def save(model, cfg, step, elapsed, args, n_params):
    tmp = args.out + ".tmp"
    torch.save({"model": model.state_dict(), "config": cfg.__dict__, "step": step, "elapsed": elapsed,
                "args": vars(args), "params": n_params, "tokens_seen": step * args.batch * args.seq_len}, tmp)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
