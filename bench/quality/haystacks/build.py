#!/usr/bin/env python3
"""Held-out passkey haystacks from three text sources that are not in the training data (KJV + Brown).

Each source's entries are split into alternating blocks of 40: even blocks -> validation (chooses the decimation policy),
odd blocks -> test (only reported). Text is reflowed into paragraphs; digits are removed later by haystackText().
Usage (Debian, as root): python3 bench/quality/haystacks/build.py   # apt-get downloads the three .deb files
"""
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_CHARS = 400_000  # per split: ~100K tokens each, enough to fill 256K prompts with at most 3 wraps, repo stays lean
SOURCES = {
    "jargon": {"deb": "dict-jargon", "file": "usr/share/dictd/jargon.dict.dz", "licence": "public domain (Jargon File 4.4.7; Debian copyright file)", "genre": "hacker lexicon, essayistic prose"},
    "gcide": {"deb": "dict-gcide", "file": "usr/share/dictd/gcide.dict.dz", "licence": "GPL-3+ (GCIDE, from Webster's 1913; Debian copyright file)", "genre": "dictionary definitions and quotations"},
    "fortunes": {"deb": "fortunes", "dir": "usr/share/games/fortunes", "licence": "BSD (4.4BSD fortune data; Debian copyright file)", "genre": "quotations, jokes, verse"},
}


def paragraphs(block):
    """Lines of one paragraph joined by spaces; runs of whitespace collapsed."""
    return [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", block) if p.strip()]


def jargon_entries(text):
    out = []
    for entry in re.split(r"\n(?=\S)", text):  # an entry starts at column 0
        body = "\n".join(entry.split("\n")[1:])
        body = re.sub(r"[{}]", "", body)
        ps = [p for p in paragraphs(body) if len(p) > 40 and not p.startswith("/")]
        if ps:
            out.append("\n\n".join(ps))
    return out[20:]  # skip the dictd header entries


def gcide_entries(text):
    out = []
    for entry in re.split(r"\n(?=[A-Z][^\n]*\\)", text):
        body = re.sub(r"\\[^\\\n]*\\", "", entry)            # pronunciation \Ab"so*lute\
        body = re.sub(r"\[(1913 Webster|Webster 1913 Suppl\.|PJC|WordNet[^\]]*|[^\]]{0,20})\]", "", body)
        body = re.sub(r"[{}]", "", body).replace("--", " ")
        ps = [p for p in paragraphs(body) if len(p) > 40 and not p.startswith("Syn:")]
        if ps:
            out.append(" ".join(ps))
    return out[50:]


def fortune_entries(files):
    out = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for cookie in fh.read().split("\n%\n"):
                ps = paragraphs(cookie.replace("\t", " "))
                if ps and sum(map(len, ps)) > 60:
                    out.append(" ".join(ps))
    return out


def split(entries):
    val, test = [], []
    for i, e in enumerate(entries):
        (val if (i // 40) % 2 == 0 else test).append(e)
    cap = lambda es: "\n\n".join(es)[:MAX_CHARS].rsplit("\n\n", 1)[0]
    return cap(val), cap(test)


def main():
    meta = {"command": "python3 bench/quality/haystacks/build.py", "split": "alternating blocks of 40 entries: even -> val, odd -> test", "sources": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in SOURCES.items():
            subprocess.run(["apt-get", "download", src["deb"]], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            deb = next(f for f in os.listdir(tmp) if f.startswith(src["deb"] + "_"))
            root = os.path.join(tmp, name)
            subprocess.run(["dpkg-deb", "-x", deb, root], cwd=tmp, check=True)
            version = deb.split("_")[1]
            if name == "fortunes":
                d = os.path.join(root, src["dir"])
                files = sorted(os.path.join(d, f) for f in os.listdir(d) if "." not in f and os.path.isfile(os.path.join(d, f)))
                entries = fortune_entries(files)
            else:
                text = gzip.open(os.path.join(root, src["file"]), "rt", encoding="utf-8", errors="replace").read()
                entries = (jargon_entries if name == "jargon" else gcide_entries)(text)
            val, test = split(entries)
            for part, body in (("val", val), ("test", test)):
                with open(os.path.join(HERE, f"{name}-{part}.txt"), "w", encoding="utf-8") as fh:
                    fh.write(body + "\n")
            meta["sources"][name] = {"debian_package": f"{src['deb']} {version}", "licence": src["licence"], "genre": src["genre"], "entries": len(entries), "val_chars": len(val), "test_chars": len(test)}
            print(f"{name}: {len(entries)} entries, val {len(val)} chars, test {len(test)} chars", file=sys.stderr)
    with open(os.path.join(HERE, "sources.json"), "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    main()
