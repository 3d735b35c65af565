#!/usr/bin/env python3
"""Trains deciserve's byte-level BPE tokenizer on the training split and writes tokenizer.json.

Digits are split one per token so a passkey is always spelled the same way whatever surrounds it.
Usage: python3 train/tokenizer_train.py --data .corpus --vocab 4096 --out <dir>/tokenizer.json
"""
import argparse

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=".corpus")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    with open(f"{args.data}/train.txt", encoding="utf-8") as f:
        docs = f.read().split(EOT)
    tok.train_from_iterator((p for d in docs for p in d.split("\n\n")), trainer)
    tok.save(args.out)
    print(f"tokenizer: {tok.get_vocab_size()} tokens -> {args.out}")


if __name__ == "__main__":
    main()
