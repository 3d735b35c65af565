#!/usr/bin/env python3
"""Chooses the length-adaptive DeciMamba budget from the VALIDATION split of a policy sweep (train/policy_sweep.py).

For each swept length: val accuracy of every drop@K (K >= length counts as mamba), summed over the three sources and
the five depths, then smoothed over neighbouring K in the grid (1/4, 1/2, 1/4) so a K on the edge of a plateau is not
picked by one lucky sample; the best smoothed K (ties -> the larger K, which drops less) is that length's budget.
Usage: python3 bench/quality/choose_policy.py bench/results/policy-sweep.json [--apply MODEL_DIR] > bench/results/policy-choice.json
--apply writes the chosen lBaseByLength into MODEL_DIR/deciserve.json (the card every engine reads).
"""
import json
import sys


def main():
    args = sys.argv[1:]
    apply_to = args[args.index("--apply") + 1] if "--apply" in args else None
    sweep = json.load(open(args[0]))
    val = sweep["counts"]["val"]
    ks = sorted(int(p.split("@")[1]) for p in sweep["policies"] if p.startswith("drop@") and p.split("@")[1].isdigit())
    rows, table = {}, []
    for length in sweep["lengths"]:
        def acc(k):
            name = "mamba" if k >= length else f"drop@{k}"
            cells = [c for s in val.values() for c in s.get(name, {}).get(str(length), {}).values()]
            return sum(a for a, _ in cells) / sum(n for _, n in cells)
        grid = [k for k in ks if k < length] + [length]       # the last entry is "no decimation"
        raw = [acc(k) for k in grid]
        smooth = [(raw[max(i - 1, 0)] + 2 * raw[i] + raw[min(i + 1, len(raw) - 1)]) / 4 for i in range(len(raw))]
        best = max(range(len(grid)), key=lambda i: (round(smooth[i], 6), grid[i]))
        rows[str(length)] = {"grid": grid, "val_acc": raw, "smoothed": smooth, "chosen": grid[best]}
        if grid[best] < length:
            table.append([length, grid[best]])
    out = {"command": "python3 bench/quality/choose_policy.py " + " ".join(sys.argv[1:]), "split": "val",
           "rule": "max smoothed val accuracy per swept length, ties to the larger K",
           "lBaseByLength": table, "perLength": rows}
    print(json.dumps(out, indent=1))
    if apply_to:
        card_path = f"{apply_to}/deciserve.json"
        card = json.load(open(card_path))
        card["decimation"]["lBaseByLength"] = table
        json.dump(card, open(card_path, "w"), indent=2)


if __name__ == "__main__":
    main()
