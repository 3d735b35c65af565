"""Token-filtering policies at one Mamba-1 layer, to compare with DeciMamba's top-K by ||delta|| (mamba.py):
a LongMamba-style global-channel filter and a LAMB-style attention-guided filter. Written for deciserve from the
papers' descriptions (LongMamba, arXiv 2504.16053; LAMB, Ye et al., ACL 2025 short paper 96); no code copied.

LAMB scores tokens by the attention the SSM itself pays them. Mamba-1 is an implicit attention: channel d of the scan
output is y[t,d] = sum_j alpha_d[t,j] x[j,d] + D_d x[t,d] with
    alpha_d[t,j] = sum_n C_t[n] exp(A[d,n] * sum_{k=j+1..t} delta[k,d]) B_j[n] delta[j,d].
The queries are the protected tail (the question the answer follows). Context token j scores, in channel d,
    s_d(j) = sum_{t in tail} |alpha_d[t,j]|,
the attention the question pays it there. Splitting the decay at the context/tail boundary c keeps every exponent
non-positive, so nothing overflows at any length, and makes alpha a product of a context factor and a tail factor:
    sum_{k=j+1..t} delta = R_d(j) + P_d(t),  R_d(j) = sum_{k=j+1..c-1} delta (fp64 cumsum),  P_d(t) = sum_{k=c..t} delta
    alpha_d[t,j] = delta[j,d] * sum_n (B_j[n] exp(A[d,n] R_d(j))) (C_t[n] exp(A[d,n] P_d(t))).
Context tokens go in chunks, so memory is O(chunk * D * N) and work O(L * D * N * |tail|): no L x L matrix.

How the scores select tokens, always with the shipped policy's budget K (deciserve.json lBaseByLength):
  lamb@K    token filtering as DeciMamba does it: each channel's scores are normalised to a distribution over the
            context (every channel counts the same, as heads do in attention-based KV-cache eviction), summed over
            channels, and the top K context tokens are kept in time order with the tail; the others are removed.
  lambch@K  per-channel filtering into the SSM memory (LongMamba's mechanism, LAMB's metric): in every channel only
            its own top-K context tokens enter the state; elsewhere delta is 0, so the state passes through unchanged.
"""
import math

import torch
import torch.nn.functional as F

from mamba import gather_time, select_kept

SCORE_CHUNK = 2048  # context tokens per chunk of the attention scores


def lbase_for_length(points, length):
    """K for a prompt of `length` tokens from lBaseByLength: log-log interpolation, end values outside
    (the rule of mamba/decimation.ts lBaseForLength, so the sweep runs the budgets the engines run)."""
    if length <= points[0][0]:
        return points[0][1]
    if length >= points[-1][0]:
        return points[-1][1]
    i = next(i for i, (l, _) in enumerate(points) if l >= length)
    (l0, b0), (l1, b1) = points[i - 1], points[i]
    t = math.log(length / l0) / math.log(l1 / l0)
    return round(math.exp(math.log(b0) + t * math.log(b1 / b0)))


def attention_scores(A, delta, B, C, context, chunk=SCORE_CHUNK):
    """s[b, j, d] = sum over tail positions t >= context of |alpha_d[t, j]|, for context tokens j < context.
    A [D, N] (negative); delta [Bt, L, D]; B, C [Bt, L, N]; all fp32. Returns [Bt, context, D] fp32."""
    d64 = delta[:, :context].double().cumsum(1)
    rest = (d64[:, -1:] - d64).float()                                   # R(j): decay from j+1 to the boundary
    del d64
    tail_decay = delta[:, context:].double().cumsum(1).float()           # P(t): decay from the boundary to t
    tail = C[:, context:, None, :] * torch.exp(A * tail_decay[..., None])  # [Bt, q, D, N]
    scores = torch.empty(delta.shape[0], context, delta.shape[2], device=delta.device)
    for s in range(0, context, chunk):
        sl = slice(s, min(s + chunk, context))
        keys = B[:, sl, None, :] * torch.exp(A * rest[:, sl, :, None])  # [Bt, T, D, N]
        alpha = torch.einsum("bjdn,btdn->bjdt", keys, tail)              # [Bt, T, D, q], before delta_j
        scores[:, sl] = alpha.abs().sum(-1) * delta[:, sl]
    return scores


def token_kept(scores, k):
    """lamb@K: top-K context tokens by the channel-normalised attention, ascending. scores [Bt, Lc, D] -> [Bt, K]."""
    share = scores / scores.sum(1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)
    return select_kept(share.sum(-1), k)


def _scan_out(m, u, x, z, delta, B, C, conv_state):
    y, ssm_state = m.selective_scan(x.float(), delta, B.float(), C.float())
    y = y * F.silu(z.float())
    return m.out_proj(y.to(u.dtype)), (conv_state.float(), ssm_state)


def lamb_mixer(m, u, k, protect, per_channel, cache=None):
    """The layer under lamb@K (per_channel False) or lambch@K (True). The scores do not depend on K or on the
    variant, so a `cache` dict shared by the calls on the same u computes them once.
    Returns (out [Bt, L or K + tail, d_model], state, kept [Bt, K + tail] or None)."""
    x, z, delta, B, C, conv_state = m.project(u)
    L = u.shape[1]
    context = L - min(protect, L)
    kept = None
    if context > k:
        cache = {} if cache is None else cache
        if "scores" not in cache:
            A = -torch.exp(m.A_log.float())
            cache["scores"] = attention_scores(A, delta, B.float(), C.float(), context)
        scores = cache["scores"]
        if per_channel:
            kth = scores.topk(k, dim=1).values[:, -1:]                      # [Bt, 1, D], each channel's K-th
            delta = torch.cat([delta[:, :context].masked_fill(scores < kth, 0.0), delta[:, context:]], dim=1)
        else:
            tail = torch.arange(context, L, device=u.device).expand(u.shape[0], L - context)
            kept = torch.cat([token_kept(scores, k), tail], dim=1)
            x, z, delta, B, C = (gather_time(t, kept) for t in (x, z, delta, B, C))
    out, state = _scan_out(m, u, x, z, delta, B, C, conv_state)
    return out, state, kept


def global_channel_mixer(m, u, k, tau, protect, train_len):
    """LongMamba-style: "global" channels (receptive field beyond the training length: the slowest state's mean decay
    mean_t(delta) * min|A| * L_train < tau) skip their tokens outside their own top-K delta (delta 0 there, so the
    state passes through); local channels see every token."""
    x, z, delta, B, C, conv_state = m.project(u)
    L = u.shape[1]
    context = L - min(protect, L)
    if context > k:
        a_min = torch.exp(m.A_log.float()).min(-1).values                     # [D], slowest-decaying state
        decay = delta[:, :context].mean(1) * a_min * train_len                  # [Bt, D]
        is_global = decay < tau
        kth = delta[:, :context].topk(k, dim=1).values[:, -1:]                  # [Bt, 1, D], each channel's own K-th
        drop = (delta[:, :context] < kth) & is_global[:, None, :]
        delta = torch.cat([delta[:, :context].masked_fill(drop, 0.0), delta[:, context:]], dim=1)
    return _scan_out(m, u, x, z, delta, B, C, conv_state)
