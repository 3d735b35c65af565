#!/usr/bin/env python3
"""Writes a trained checkpoint as an HF Mamba-1 folder: config.json, model.safetensors (F16), tokenizer.json,
plus deciserve.json (trainingLength and DeciMamba defaults, camelCase keys) and haystack.txt (held-out text for passkey prompts).

Usage: python3 train/export.py --ckpt ckpt.pt --tokenizer T.json --data .corpus --out models/deciserve-mamba
"""
import argparse
import json
import os
import shutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from data import haystack_text  # noqa: E402
from mamba import MambaConfig, MambaLM  # noqa: E402


def load_model(model_dir, device="cpu"):
    """Loads an exported folder back (weights upcast to fp32), as the engines do."""
    with open(os.path.join(model_dir, "config.json")) as f:
        hf = json.load(f)
    cfg = MambaConfig(d_model=hf["hidden_size"], n_layer=hf["num_hidden_layers"], vocab_size=hf["vocab_size"],
                      d_state=hf["state_size"], d_conv=hf["conv_kernel"], expand=hf["expand"], eps=hf["layer_norm_epsilon"])
    model = MambaLM(cfg)
    tensors = {k: v.float() for k, v in st_io.load(os.path.join(model_dir, "model.safetensors")).items()}
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", default=".corpus")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="F16", choices=["F16", "F32"])
    args = ap.parse_args()
    ck = torch.load(args.ckpt, map_location="cpu")
    cfg = MambaConfig(**ck["config"])
    os.makedirs(args.out, exist_ok=True)
    dtype = torch.float16 if args.dtype == "F16" else torch.float32
    st_io.save({k: v.to(dtype) for k, v in ck["model"].items()}, os.path.join(args.out, "model.safetensors"), {"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg.hf_config(), f, indent=2)
    shutil.copy(args.tokenizer, os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.data, "heldout.txt"), encoding="utf-8") as f:
        hay = haystack_text(f.read())
    with open(os.path.join(args.out, "haystack.txt"), "w", encoding="utf-8") as f:
        f.write(hay)
    # camelCase keys, as the serving side's DecimationConfig (mamba/model-defaults.ts reads this file)
    meta = {"trainingLength": ck["args"]["seq_len"], "steps": ck["step"], "tokensSeen": ck["tokens_seen"],
            "params": ck["params"], "trainSeconds": round(ck["elapsed"]),
            "decimation": {"layers": [cfg.n_layer // 2], "beta": 0.5, "lBase": 2000, "minSeqLen": 20}}
    with open(os.path.join(args.out, "deciserve.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"exported {args.out}: {ck['params']:,} params, {args.dtype}")


if __name__ == "__main__":
    main()
