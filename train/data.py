"""Token streams, the passkey task (format shared with mamba/passkey.ts; see mamba/README.md) and training batches."""
import re

import numpy as np
import torch

EOT = "<|endoftext|>"
NEEDLE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"
ANSWER = " {key}."


class HFTokenizer:
    def __init__(self, path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(path)
        self.eot = self.tok.token_to_id(EOT)

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def encode_many(self, texts):
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids):
        return self.tok.decode(list(ids), skip_special_tokens=False)


def encode_corpus(tok, text):
    """One int32 stream; paragraphs are encoded separately (fast, parallel) and joined by their separators."""
    paras = text.split("\n\n")
    ids = tok.encode_many([p if i == 0 else "\n\n" + p for i, p in enumerate(paras)])
    return np.fromiter((t for p in ids for t in p), dtype=np.int32)


def haystack_text(text):
    """Held-out or training text without digits or document markers: the key must be the only number."""
    return re.sub(r"[ \t]+", " ", re.sub(r"\d", "", text.replace(EOT, " ")))


def take(stream, offset, n):
    """n tokens from offset, wrapping around the stream."""
    o = offset % len(stream)
    if o + n <= len(stream):
        return stream[o:o + n]
    return np.tile(stream, (o + n) // len(stream) + 1)[o:o + n]


class Passkey:
    def __init__(self, tok):
        self.tok = tok
        self.question = tok.encode(QUESTION)

    def prompt(self, hay, length, depth, key, offset):
        """Token-level: hay[:n] + needle + hay[n:m] + question, exactly `length` tokens."""
        needle = self.tok.encode(NEEDLE.format(key=key))
        m = length - len(needle) - len(self.question)
        if m < 0:
            raise ValueError(f"passkey prompt of {length} tokens is too short")
        h = take(hay, offset, m)
        n = int(round(depth * m))
        return np.concatenate([h[:n], needle, h[n:], self.question]).astype(np.int64)

    def answer(self, key):
        return self.tok.encode(ANSWER.format(key=key))

    def correct(self, generated_ids, key):
        m = re.search(r"\d+", self.tok.decode(generated_ids))
        return bool(m) and m.group(0) == str(key)


class TrainingBatches:
    """Sequences of seq_len+1 tokens: plain text windows, or text + EOT + a passkey prompt + its answer."""

    def __init__(self, tok, stream, hay, seq_len, passkey_fraction, seed):
        self.tok, self.stream, self.hay = tok, stream, hay
        self.seq_len, self.p = seq_len, passkey_fraction
        self.rng = np.random.default_rng(seed)
        self.passkey = Passkey(tok)

    def prompt_length(self, shortest, longest):
        """Half uniform, half log-uniform: short episodes are cheap supervision, long ones teach the full window."""
        if longest <= shortest:
            return shortest
        if self.rng.random() < 0.5:
            return int(self.rng.integers(shortest, longest + 1))
        return int(round(np.exp(self.rng.uniform(np.log(shortest), np.log(longest)))))

    def episode(self, max_len, max_prompt):
        """EOT + passkey prompt + answer in at most max_len tokens, or None if none fits."""
        rng = self.rng
        key = int(rng.integers(10000, 100000))
        answer = self.passkey.answer(key)
        shortest = len(self.passkey.question) + len(self.tok.encode(NEEDLE.format(key=key))) + 8
        longest = min(max(max_prompt, shortest), max_len - len(answer) - 1)
        if longest < shortest:
            return None
        length = self.prompt_length(shortest, longest)
        prompt = self.passkey.prompt(self.hay, length, float(rng.random()), key, int(rng.integers(0, len(self.hay))))
        return np.concatenate([[self.tok.eot], prompt, answer]), len(answer)

    def sample(self, max_prompt):
        """Returns (tokens, answer spans). A passkey sequence packs episodes back to back after a text filler, so a
        step sees several answers while prompts are short; each episode's key is the only number after its EOT."""
        T, rng = self.seq_len + 1, self.rng
        if rng.random() >= self.p:
            start = rng.integers(0, len(self.stream) - T)
            return self.stream[start:start + T], []
        episodes, used = [], 0
        while True:
            ep = self.episode(T - used, max_prompt)
            if ep is None or (episodes and rng.random() < 0.15):
                break
            episodes.append(ep)
            used += len(ep[0])
        filler_len = T - used
        start = rng.integers(0, len(self.stream) - filler_len)
        parts, spans, pos = [self.stream[start:start + filler_len]], [], filler_len
        for tokens, n_answer in episodes:
            parts.append(tokens)
            pos += len(tokens)
            spans.append((pos - n_answer, pos))
        return np.concatenate(parts), spans

    def batch(self, batch_size, max_prompt, device):
        seqs, mask = [], np.zeros((batch_size, self.seq_len), dtype=np.float32)
        for i in range(batch_size):
            seq, spans = self.sample(max_prompt)
            seqs.append(seq)
            for a, b in spans:
                mask[i, a - 1:b - 1] = 1.0  # targets are shifted by one
        x = torch.from_numpy(np.stack(seqs).astype(np.int64)).to(device)
        return x[:, :-1], x[:, 1:], torch.from_numpy(mask).to(device)
