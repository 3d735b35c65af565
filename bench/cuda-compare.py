#!/usr/bin/env python3
"""PyTorch side of the CUDA engine benchmark (issue #5), run on the GPU machine right after
mamba/cuda/device-check.ts, on the same weights (the bf16 safetensors it wrote to --bench-dir):

  (a) HF transformers MambaForCausalLM (the device image has no mamba_ssm / causal_conv1d kernels, so this is its
      slow path: the baseline the issue measured at 53.5 s for one 32K prefill of the 130m shape in fp32);
  (b) the project's own PyTorch implementation, train/mamba.py (Triton associative scan).

Prefill only (the lm_head at the last position, as the CUDA engine does), plain Mamba and DeciMamba (b only; HF has no
DeciMamba), fp32 and bf16, within a time budget: a measurement whose linear extrapolation would overrun is skipped and
listed. Reads $OUT/cuda-bench.json (the CUDA numbers) and prints the comparison table last; writes cuda-compare.json/.md.

  python3 bench/cuda-compare.py --bench-dir /tmp/deciserve-bench --out "$OUT" --budget-s 170
  python3 bench/cuda-compare.py --join-only --out DIR   # no GPU: re-join DIR/cuda-compare.json's timings with DIR/cuda-bench.json
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
except ImportError:  # --join-only needs no torch
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "train"))


def sync():
    torch.cuda.synchronize()


class Budget:
    def __init__(self, seconds):
        self.end = time.time() + seconds

    def left(self):
        return self.end - time.time()


def timed(fn, reps, warm):
    if warm:
        fn()  # warm-up (Triton compile, cuBLAS heuristics, allocator); later lengths reuse it
        sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def hf_prefill(model):
    def run(ids):
        with torch.no_grad():
            out = model.backbone(input_ids=ids)
            h = out.last_hidden_state[:, -1:]
            return model.lm_head(h.to(model.lm_head.weight.dtype)).float()
    return run


def train_prefill(model, decimation):
    def run(ids):
        with torch.no_grad():
            return model(ids, decimation=decimation, protect=16, last_n=1)["logits"]
    return run


def load_hf(path, dtype):
    from transformers import MambaForCausalLM
    return MambaForCausalLM.from_pretrained(path, dtype=dtype).cuda().eval()


def load_train(path, dtype):
    from export import load_model  # train/export.py: config.json + safetensors → MambaLM (fp32)
    model = load_model(path, "cuda")
    return model.to(dtype) if dtype != torch.float32 else model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench-dir", default="/tmp/deciserve-bench")
    ap.add_argument("--out", default=os.environ.get("OUT", ".device-out"))
    ap.add_argument("--shapes", default="130m,1.4b")
    ap.add_argument("--hf-lengths", default="2048,8192,32768")
    ap.add_argument("--train-lengths", default="2048,8192,32768,65536,131072")
    ap.add_argument("--budget-s", type=float, default=170)
    ap.add_argument("--dtypes", default="fp32,bf16", help="precisions to time (1.4b: bf16 only)")
    ap.add_argument("--verbose", action="store_true", help="print every timing as it is taken")
    ap.add_argument("--join-only", action="store_true", help="take the PyTorch timings from --out/cuda-compare.json instead of measuring")
    args = ap.parse_args()
    if args.join_only:
        with open(os.path.join(args.out, "cuda-compare.json")) as f:
            prev = json.load(f)
        errors = [e for e in prev["errors"] if not e.startswith("no CUDA results")]
        # the timings of the committed file were taken by the command in mamba/cuda/README.md (Running it)
        measured = prev.get("timingsCommand") or "python3 bench/cuda-compare.py --bench-dir /tmp/deciserve-bench --out $OUT --budget-s 135"
        return report(args, prev["info"], prev["rows"], prev["skipped"], errors, measured)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 here too
    torch.backends.cudnn.allow_tf32 = False
    budget = Budget(args.budget_s)
    rows, skipped, errors = [], [], []
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    try:
        import transformers
        info["transformers"] = transformers.__version__
    except Exception as e:  # noqa: BLE001
        info["transformers"] = f"unavailable: {e}"
    from mamba import Decimation

    for shape in [s for s in args.shapes.split(",") if s]:
        path = os.path.join(args.bench_dir, shape)
        if not os.path.exists(os.path.join(path, "model.safetensors")):
            skipped.append(f"{shape}: no checkpoint in {path} (device-check did not write it)")
            continue
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        n_layer, vocab = cfg["num_hidden_layers"], cfg["vocab_size"]
        deci = Decimation(layers=[n_layer // 2], beta=0.5, l_base=2000, min_seq_len=20)
        # train/ first: it is fast, so its rows always make it in; HF's slow path takes what time is left
        impls = [("train", load_train, [int(x) for x in args.train_lengths.split(",")], [None, deci]),
                 ("hf", load_hf, [int(x) for x in args.hf_lengths.split(",")], [None])]
        wanted = {"fp32": torch.float32, "bf16": torch.bfloat16}
        dtypes = [wanted[d] for d in args.dtypes.split(",") if d in wanted and (shape != "1.4b" or d == "bf16")]
        for impl, loader, lengths, modes in impls:
            for dtype in dtypes:
                dname = "fp32" if dtype == torch.float32 else "bf16"
                if budget.left() < 15:
                    skipped.append(f"{impl} {shape} {dname}: time budget")
                    continue
                try:
                    t0 = time.time()
                    model = loader(path, dtype)
                    load_s = time.time() - t0
                except Exception as e:  # noqa: BLE001
                    errors.append(f"{impl} {shape} {dname}: load failed: {type(e).__name__}: {e}"[:400])
                    continue
                for mode in modes:
                    mode_name = "mamba" if mode is None else "decimamba"
                    last_ms = None
                    last_len = None
                    for L in lengths:
                        per_run = (last_ms / 1e3) * (L / last_len) if last_ms else 2
                        reps = 3 if per_run < 1 else 1
                        estimate = per_run * (reps + (0 if last_ms else 1)) * 1.2
                        if estimate > budget.left() - 5:
                            skipped.append(f"{impl} {shape} {dname} {mode_name} L={L}: ~{estimate:.0f}s, over the time budget")
                            break
                        ids = torch.randint(0, vocab, (1, L), generator=torch.Generator().manual_seed(L)).cuda()
                        run = hf_prefill(model) if impl == "hf" else train_prefill(model, mode)
                        try:
                            ms = timed(lambda: run(ids), reps=reps, warm=last_ms is None)
                        except torch.cuda.OutOfMemoryError as e:
                            errors.append(f"{impl} {shape} {dname} {mode_name} L={L}: out of memory ({str(e)[:120]})")
                            torch.cuda.empty_cache()
                            break
                        except Exception as e:  # noqa: BLE001
                            errors.append(f"{impl} {shape} {dname} {mode_name} L={L}: {type(e).__name__}: {e}"[:400])
                            break
                        last_ms, last_len = ms, L
                        row = {"impl": impl, "shape": shape, "dtype": dname, "L": L, "mode": mode_name, "ms": ms,
                               "tokensPerS": round(L / (ms / 1e3)), "loadS": round(load_s, 1)}
                        rows.append(row)
                        if args.verbose:
                            print(json.dumps(row), flush=True)
                del model
                torch.cuda.empty_cache()
    report(args, info, rows, skipped, errors)


def report(args, info, rows, skipped, errors, timings_command=None):
    cuda = {}
    try:
        with open(os.path.join(args.out, "cuda-bench.json")) as f:
            for r in json.load(f)["tables"].get("prefill", []):
                cuda[(r["shape"], r["engine"].replace("cuda-", ""), r["L"], r["mode"])] = r["ms"]
    except Exception as e:  # noqa: BLE001
        errors.append(f"no CUDA results to compare with: {e}")
    comparison = []
    for r in rows:
        # the same precision on both sides only: an fp32 peer against the bf16 engine would credit precision to speed
        c = cuda.get((r["shape"], r["dtype"], r["L"], r["mode"]))
        if c:
            comparison.append({**r, "cudaEngine": f"cuda-{r['dtype']}", "cudaMs": c, "speedup": r["ms"] / c})
    os.makedirs(args.out, exist_ok=True)
    command = "python3 " + " ".join(["bench/cuda-compare.py"] + sys.argv[1:])
    # --join-only reuses timings: keep the command that measured them beside the one that wrote this file
    timings_command = timings_command or command
    with open(os.path.join(args.out, "cuda-compare.json"), "w") as f:
        json.dump({"command": command, "timingsCommand": timings_command, "info": info, "rows": rows, "comparison": comparison,
                   "skipped": skipped, "errors": errors}, f, indent=1)
    lines = ["# CUDA engine vs PyTorch (same weights, same precision on both sides)", "", f"Command: `{command}`",
             f"(timings: `{timings_command}`; CUDA side: cuda-bench.json). Prefill of one sequence at batch 1, ms: the median of 3 runs where one takes under 1 s, else 1 run (every HF timing, 4-84 s, is n=1).", "",
             f"`{json.dumps(info)}`", "",
             "| impl | shape | dtype | L | mode | torch ms | CUDA engine | CUDA ms | speedup |", "|---|---|---|---|---|---|---|---|---|"]
    for c in comparison:
        lines.append(f"| {c['impl']} | {c['shape']} | {c['dtype']} | {c['L']} | {c['mode']} | {c['ms']:.1f} | {c['cudaEngine']} | {c['cudaMs']:.2f} | {c['speedup']:.0f}× |")
    lines += ["", "Skipped: " + ("; ".join(skipped) or "none"), "", "Errors: " + ("; ".join(errors) or "none"), ""]
    with open(os.path.join(args.out, "cuda-compare.md"), "w") as f:
        f.write("\n".join(lines))

    print(f"== PyTorch comparison ({info.get('transformers')}, torch {info['torch']}): {len(rows)} timings, {len(skipped)} skipped, {len(errors)} errors")
    for e in errors[:6]:
        print("ERROR", e[:300])
    print(f"{'impl':6} {'shape':5} {'dtype':5} {'L':>7} {'mode':9} {'torch ms':>10}  vs {'engine':10} {'ms':>8} {'speedup':>8}")
    for c in comparison:
        print(f"{c['impl']:6} {c['shape']:5} {c['dtype']:5} {c['L']:>7} {c['mode']:9} {c['ms']:>10.1f}  vs {c['cudaEngine']:10} {c['cudaMs']:>8.2f} {c['speedup']:>7.0f}×")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
