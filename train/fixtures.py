#!/usr/bin/env python3
"""Golden fixtures for the TypeScript engines, computed here in fp32 (TF32 off) by this independent implementation.

For the shipped model and for a tiny random checkpoint: logits at chosen positions, kept indices, per-layer final
conv/ssm states, and 8 greedy tokens, for a ~300-token and a ~6K-token passkey prompt, decimation off and on.
Format: mamba/README.md. Usage: python3 train/fixtures.py --model models/deciserve-mamba --out test/fixtures
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from data import ANSWER, NEEDLE, QUESTION, HFTokenizer, Passkey, encode_corpus  # noqa: E402
from export import load_model  # noqa: E402
from mamba import Decimation, MambaConfig, MambaLM  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_case(model, name, ids, protect, deci, device, tensors):
    x = torch.tensor([ids], device=device)
    tokens, out = model.greedy(x, 8, decimation=deci, protect=protect)
    full = model(x, decimation=deci, protect=protect, with_states=True)
    kept_positions = full["positions"][0].tolist()
    L = len(ids)
    if deci is None:
        positions = sorted({0, 1, L // 3, L // 2, L - 3, L - 2, L - 1})
    else:
        positions = list(range(L - min(protect, 4), L))
    rows = [kept_positions.index(p) for p in positions]
    tensors[f"{name}.logits"] = full["logits"][0, rows].float().cpu()
    for i, (conv, ssm) in enumerate(full["states"]):
        tensors[f"{name}.conv.{i}"] = conv[0].float().cpu()
        tensors[f"{name}.ssm.{i}"] = ssm[0].float().cpu()
    return {"name": name, "ids": [int(t) for t in ids], "protect": protect,
            "decimation": deci.as_json() if deci else None, "positions": positions,
            "kept": [{"layer": layer, "indices": pos[0].tolist()} for layer, pos in full["kept"]],
            "greedy": tokens[0].tolist()}


def write_fixture(model, tok, hay, out_dir, checkpoint_rel, deci_short, deci_long, device):
    pk = Passkey(tok)
    rng = np.random.default_rng(5)
    protect = len(pk.question)
    short = pk.prompt(hay, 300, 0.5, int(rng.integers(10000, 100000)), int(rng.integers(0, len(hay))))
    long = pk.prompt(hay, 6000, 0.3, int(rng.integers(10000, 100000)), int(rng.integers(0, len(hay))))
    tensors, cases = {}, []
    for name, ids, deci in (("short_plain", short, None), ("short_deci", short, deci_short),
                            ("long_plain", long, None), ("long_deci", long, deci_long)):
        cases.append(write_case(model, name, ids.tolist(), protect, deci, device, tensors))
        kept = [len(k["indices"]) for k in cases[-1]["kept"]]
        print(f"  {out_dir}: {name} L={len(ids)} kept={kept} greedy={tok.decode(cases[-1]['greedy'])!r}", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    st_io.save(tensors, os.path.join(out_dir, "golden.safetensors"))
    with open(os.path.join(out_dir, "golden.json"), "w") as f:
        json.dump({"checkpoint": checkpoint_rel, "dtype": "float32", "cases": cases}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="exported model folder (repo-relative)")
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures"))
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = HFTokenizer(os.path.join(args.model, "tokenizer.json"))
    with open(os.path.join(args.model, "haystack.txt"), encoding="utf-8") as f:
        hay = encode_corpus(tok, f.read())
    meta = json.load(open(os.path.join(args.model, "deciserve.json")))
    d = meta["decimation"]
    best = d["layers"][0]

    shipped = load_model(args.model, device)
    n = shipped.cfg.n_layer
    deci_long = Decimation(layers=d["layers"], beta=d["beta"], l_base=min(d["lBase"], 2000), min_seq_len=d["minSeqLen"])  # the 6K prompt must decimate
    deci_short = Decimation(layers=sorted({best, min(best + 2, n - 1)}), beta=0.5, l_base=128, min_seq_len=20)
    name = os.path.basename(os.path.normpath(args.model))
    write_fixture(shipped, tok, hay, os.path.join(args.out, name), os.path.relpath(args.model, ROOT), deci_short, deci_long, device)
    texts = [NEEDLE.format(key=40913), QUESTION, ANSWER.format(key=40913), "In the beginning God created the heaven and the earth.",
             "The Fulton County Grand Jury said Friday: \"no evidence\" (1962) -- isn't it?\n\nNew paragraph <|endoftext|> next",
             tok.decode(hay[1000:1400].tolist())]
    with open(os.path.join(args.out, name, "tokenizer-cases.json"), "w") as f:
        json.dump([{"text": t, "ids": tok.encode(t)} for t in texts], f, indent=1)

    # A tiny random checkpoint (fp32 on disk) with the same tokenizer, so the f32 loader path is covered too.
    torch.manual_seed(7)
    tiny_dir = os.path.join(args.out, "tiny-random")
    cfg = MambaConfig(d_model=64, n_layer=4, vocab_size=shipped.cfg.vocab_size)
    tiny = MambaLM(cfg)
    with torch.no_grad():  # wake the random model up: larger output projections make every layer matter
        for layer in tiny.backbone.layers:
            layer.mixer.out_proj.weight.mul_(4.0)
    os.makedirs(tiny_dir, exist_ok=True)
    st_io.save(tiny.state_dict(), os.path.join(tiny_dir, "model.safetensors"), {"format": "pt"})
    with open(os.path.join(tiny_dir, "config.json"), "w") as f:
        json.dump(cfg.hf_config(), f, indent=2)
    shutil.copy(os.path.join(args.model, "tokenizer.json"), os.path.join(tiny_dir, "tokenizer.json"))
    tiny = tiny.to(device).eval()
    write_fixture(tiny, tok, hay, tiny_dir, os.path.relpath(tiny_dir, ROOT),
                  Decimation(layers=[1, 2], beta=0.5, l_base=100, min_seq_len=20),
                  Decimation(layers=[1, 2], beta=0.5, l_base=1000, min_seq_len=20), device)


if __name__ == "__main__":
    main()
