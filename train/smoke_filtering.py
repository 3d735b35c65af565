#!/usr/bin/env python3
"""CPU checks of the token-filtering policies (filtering.py) and of the policy sweep end to end, on a tiny random
model: the hidden-attention form reproduces the model's own scan, the chunked scores equal a brute-force sum, the
scores stay finite at strong decay, the budgets follow mamba/decimation.ts, and `policy_sweep.py --smoke` writes
counts, Wilson intervals, skipped cells and the table. Runs with torch only (Debian's python3-torch works):
    /usr/bin/python3 train/smoke_filtering.py
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from filtering import attention_scores, global_channel_mixer, lamb_mixer, lbase_for_length, token_kept  # noqa: E402
from mamba import MambaConfig, MambaLM  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class SmokeTask:
    """Passkey-shaped prompts over token ids: haystack, a needle of digit tokens, a fixed question tail."""

    question = list(range(50, 60))

    def prompt(self, hay, length, depth, key, offset):
        needle = [40] + [1 + int(c) for c in str(key)] + [41]
        m = length - len(needle) - len(self.question)
        h = np.resize(np.roll(hay, -offset), m)
        n = int(round(depth * m))
        return np.concatenate([h[:n], needle, h[n:], self.question]).astype(np.int64)

    def correct(self, tokens, key):
        return tokens[:5] == [1 + int(c) for c in str(key)]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return MambaLM(MambaConfig(d_model=32, n_layer=3, vocab_size=64, d_state=8)).eval()


def smoke_setup(device):
    """What policy_sweep.py --smoke runs on: model, task, haystacks per split, length budgets, training length."""
    rng = np.random.default_rng(5)
    hays_for = lambda split: {s: rng.integers(11, 40, 3000).astype(np.int32) for s in ("jargon", "gcide", "fortunes")}  # noqa: E731
    return tiny_model().to(device), SmokeTask(), hays_for, [[300, 100], [600, 150]], 128


def brute_alpha(A, delta, B, C):
    """alpha[b, t, j, d] = sum_n C_t[n] exp(A[d,n] sum_{k=j+1..t} delta[k,d]) B_j[n] delta[j,d] (0 for j > t), fp64."""
    A, delta, B, C = (t.double() for t in (A, delta, B, C))
    cs = delta.cumsum(1)                                                  # [b, L, d]
    gap = cs[:, :, None, :] - cs[:, None, :, :]                           # [b, t, j, d]: sum_{k=j+1..t}
    causal = torch.ones(delta.shape[1], delta.shape[1]).tril().bool()[None, :, :, None]
    decay = torch.exp(A[None, None, None] * gap.clamp_min(0)[..., None])  # [b, t, j, d, n]
    alpha = torch.einsum("btn,btjdn,bjn->btjd", C, decay, B) * delta[:, None, :, :]
    return alpha * causal


def mixer_inputs(m, L, seed=1):
    torch.manual_seed(seed)
    u = torch.randn(2, L, m.cfg.d_model)
    x, z, delta, B, C, _ = m.project(u)
    return u, x.float(), delta, B.float(), C.float()


class FilteringTest(unittest.TestCase):
    def setUp(self):
        self.m = tiny_model().backbone.layers[-1].mixer
        self.A = -torch.exp(self.m.A_log.float())

    @torch.no_grad()
    def test_hidden_attention_reproduces_the_scan(self):
        _, x, delta, B, C = mixer_inputs(self.m, 40)
        y, _ = self.m.selective_scan(x, delta, B, C)
        alpha = brute_alpha(self.A, delta, B, C)
        y_attn = torch.einsum("btjd,bjd->btd", alpha, x.double()) + x.double() * self.m.D.double()
        torch.testing.assert_close(y_attn.float(), y, rtol=1e-4, atol=1e-5)

    @torch.no_grad()
    def test_chunked_scores_equal_brute_force(self):
        _, x, delta, B, C = mixer_inputs(self.m, 50)
        context = 38
        got = attention_scores(self.A, delta, B, C, context, chunk=7)
        want = brute_alpha(self.A, delta, B, C)[:, context:, :context].abs().sum(1)
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-9)

    @torch.no_grad()
    def test_scores_stay_finite_under_strong_decay(self):
        _, x, delta, B, C = mixer_inputs(self.m, 3000)
        scores = attention_scores(self.A, delta * 50, B, C, 2990)
        self.assertTrue(torch.isfinite(scores).all())
        self.assertTrue((scores >= 0).all())
        self.assertGreater(scores[:, -1].sum(), 0)  # the token next to the question is still seen

    @torch.no_grad()
    def test_token_filter_keeps_the_top_k_in_time_order_plus_the_tail(self):
        u, x, delta, B, C = mixer_inputs(self.m, 60)
        protect, k = 6, 20
        out, _, kept = lamb_mixer(self.m, u, k, protect, per_channel=False)
        self.assertEqual(tuple(kept.shape), (2, k + protect))
        self.assertEqual(tuple(out.shape[:2]), (2, k + protect))
        self.assertTrue((kept[:, 1:] > kept[:, :-1]).all())
        self.assertEqual(kept[:, -protect:].tolist(), [list(range(54, 60))] * 2)
        share = brute_alpha(self.A, delta, B, C)[:, 54:, :54].abs().sum(1) * 1.0
        share = share / share.sum(1, keepdim=True)
        best = share.sum(-1).topk(k, dim=1).indices.sort(dim=1).values
        self.assertEqual(kept[:, :k].tolist(), best.tolist())

    @torch.no_grad()
    def test_full_budget_changes_nothing_and_a_small_one_does(self):
        u = mixer_inputs(self.m, 60)[0]
        plain, _, _ = self.m(u)
        for per_channel in (False, True):
            same, _, kept = lamb_mixer(self.m, u, 54, 6, per_channel)
            self.assertIsNone(kept)
            torch.testing.assert_close(same, plain)
            cut, _, _ = lamb_mixer(self.m, u, 5, 6, per_channel)
            self.assertGreater((cut[:, -1] - plain[:, -1]).abs().max().item(), 1e-6)
        same, _ = global_channel_mixer(self.m, u, 54, 8.0, 6, 128)
        torch.testing.assert_close(same, plain)

    @torch.no_grad()
    def test_per_channel_filter_equals_zeroing_unkept_delta(self):
        u, x, delta, B, C = mixer_inputs(self.m, 60)
        got, _, _ = lamb_mixer(self.m, u, 10, 6, per_channel=True, cache={})
        scores = brute_alpha(self.A, delta, B, C)[:, 54:, :54].abs().sum(1).float()
        keep = scores >= scores.topk(10, dim=1).values[:, -1:]
        self.assertEqual(keep.sum(1).unique().tolist(), [10])
        d2 = torch.cat([delta[:, :54] * keep, delta[:, 54:]], 1)
        z = self.m.project(u)[1]
        y, _ = self.m.selective_scan(x, d2, B, C)
        want = self.m.out_proj(y * torch.nn.functional.silu(z.float()))
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)

    def test_token_kept_ignores_silent_channels(self):
        scores = torch.zeros(1, 5, 2)
        scores[0, :, 0] = torch.tensor([1.0, 5.0, 1.0, 1.0, 2.0])  # channel 1 attends to nothing
        self.assertEqual(token_kept(scores, 2).tolist(), [[1, 4]])

    def test_budgets_follow_the_engines_rule(self):
        card = [[16000, 8000], [32000, 12000], [64000, 16000], [128000, 24000], [256000, 24000]]
        self.assertEqual([lbase_for_length(card, n) for n in (1000, 32000, 128000, 512000)], [8000, 12000, 24000, 24000])
        t = math.log(48000 / 32000) / math.log(2)
        self.assertEqual(lbase_for_length(card, 48000), round(math.exp(math.log(12000) + t * math.log(16000 / 12000))))


class SweepSmokeTest(unittest.TestCase):
    def run_sweep(self, *extra):
        out = os.path.join(tempfile.mkdtemp(), "sweep.json")
        args = ["--smoke", "--lengths", "300,600", "--ks", "card", "--global-ks", "card", "--taus", "8",
                "--lamb-ks", "card", "--samples", "test=1,val=1", "--out", out, *extra]
        proc = subprocess.run([sys.executable, os.path.join(HERE, "policy_sweep.py"), *args], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(out) as f:
            return json.load(f), proc.stdout

    def test_every_policy_split_and_length_is_counted_with_intervals(self):
        result, stdout = self.run_sweep()
        names = ["mamba", "drop@card", "global@card/8.0", "lamb@card", "lambch@card"]
        self.assertEqual(result["policies"], names)
        self.assertEqual(result["k_by_length"], {"300": 100, "600": 150})
        self.assertTrue(result["command"].startswith("python3 train/policy_sweep.py --smoke"))
        for split in ("test", "val"):
            for name in names:
                for length in ("300", "600"):
                    row = result["summary"][split][name][length]
                    self.assertEqual(row["n"], 15)  # 3 sources x 5 depths x 1
                    lo, hi = row["wilson95"]
                    self.assertTrue(0 <= lo <= row["acc"] <= hi <= 1)
        self.assertIn("| test | 600 |", stdout.strip().splitlines()[-3])
        self.assertTrue(stdout.strip().splitlines()[-1].startswith("| val | 600 |"))

    def test_budget_skips_what_would_not_fit(self):
        result, _ = self.run_sweep("--budget-s", "0.001")
        self.assertEqual([(s["split"], s["length"]) for s in result["skipped"]], [("val", 300), ("test", 600), ("val", 600)])
        self.assertEqual(list(result["summary"]), ["test"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
