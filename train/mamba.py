"""Mamba-1 and DeciMamba in PyTorch, written for deciserve independently of the TypeScript engines.

Parameter names follow the HF `MambaForCausalLM` layout so checkpoints load anywhere. The mixer follows the paper:
in_proj -> (x, z); causal depthwise conv + SiLU; x_proj -> (dt, B, C); delta = softplus(dt_proj(dt));
h_t = exp(delta_t A) h_{t-1} + delta_t B_t x_t; y_t = C_t h_t + D x_t; y *= SiLU(z); out_proj.
DeciMamba (arXiv 2406.14528, official "max_p"): at decimating layer s, keep the
K = max(min(Lc, floor(L_base beta^s)), min_seq_len) context tokens with the largest ||delta_t||_2, in time order,
plus the protected tail; later layers see only those tokens.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from scan import linear_scan

SCAN_CHUNK = 4096  # long sequences are scanned in chunks so no L*D*N tensor exceeds this many steps


@dataclass
class MambaConfig:
    d_model: int = 256
    n_layer: int = 12
    vocab_size: int = 4096
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    eps: float = 1e-5

    @property
    def d_inner(self):
        return self.expand * self.d_model

    @property
    def dt_rank(self):
        return math.ceil(self.d_model / 16)

    def hf_config(self):
        return {
            "architectures": ["MambaForCausalLM"], "model_type": "mamba",
            "hidden_size": self.d_model, "num_hidden_layers": self.n_layer, "vocab_size": self.vocab_size,
            "state_size": self.d_state, "conv_kernel": self.d_conv, "expand": self.expand,
            "intermediate_size": self.d_inner, "time_step_rank": self.dt_rank, "layer_norm_epsilon": self.eps,
            "use_bias": False, "use_conv_bias": True, "residual_in_fp32": True, "tie_word_embeddings": True,
            "pad_vocab_size_multiple": 8, "hidden_act": "silu", "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
        }


@dataclass
class Decimation:
    layers: list = field(default_factory=lambda: [6])
    beta: float = 0.5
    l_base: int = 2000
    min_seq_len: int = 20

    def k(self, s, context_len):
        k = max(min(context_len, math.floor(self.l_base * self.beta ** s)), self.min_seq_len)
        return min(k, context_len)

    def as_json(self):
        return {"layers": list(self.layers), "beta": self.beta, "lBase": self.l_base, "minSeqLen": self.min_seq_len}


def select_kept(scores, k):
    """Top-k per row, ties to the earlier index, returned ascending. scores: [B, Lc]."""
    order = torch.sort(-scores, dim=-1, stable=True).indices[:, :k]
    return order.sort(dim=-1).values


def gather_time(t, idx):
    """t: [B, L, ...], idx: [B, K] -> [B, K, ...]."""
    shape = idx.shape + t.shape[2:]
    return torch.gather(t, 1, idx.view(idx.shape + (1,) * (t.dim() - 2)).expand(shape))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class MambaMixer(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        d_in, n = cfg.d_inner, cfg.d_state
        self.in_proj = nn.Linear(cfg.d_model, 2 * d_in, bias=False)
        self.conv1d = nn.Conv1d(d_in, d_in, cfg.d_conv, groups=d_in, padding=cfg.d_conv - 1, bias=True)
        self.x_proj = nn.Linear(d_in, cfg.dt_rank + 2 * n, bias=False)
        self.dt_proj = nn.Linear(cfg.dt_rank, d_in, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d_in, 1))
        self.D = nn.Parameter(torch.ones(d_in))
        self.out_proj = nn.Linear(d_in, cfg.d_model, bias=False)

    def forward(self, u, decimate=None, protect=1):
        """u: [B, L, d_model]. decimate: (Decimation, s) at a decimating layer.
        Returns (out [B, K, d_model], state (conv, ssm), kept [B, K] or None)."""
        x, z, delta, B, C, conv_state = self.project(u)
        kept = None
        if decimate is not None:
            kept = self._kept_indices(delta, decimate, protect)
            if kept is not None:
                x, delta, B, C, z = (gather_time(t, kept) for t in (x, delta, B, C, z))
        y, ssm_state = self.selective_scan(x.float(), delta, B.float(), C.float())
        y = y * F.silu(z.float())
        return self.out_proj(y.to(u.dtype)), (conv_state.float(), ssm_state), kept

    def project(self, u):
        """Everything before the scan, for u [B, L, d_model]: x, z, delta (fp32), B, C and the conv state.
        Token-filtering policies (train/filtering.py) change delta or the kept tokens between this and the scan."""
        cfg, L = self.cfg, u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        conv_state = F.pad(x.transpose(1, 2), (cfg.d_conv - L, 0)) if L < cfg.d_conv else x[:, -cfg.d_conv:].transpose(1, 2)
        x = F.silu(self.conv1d(x.transpose(1, 2))[..., :L].transpose(1, 2))
        dt, B, C = self.x_proj(x).split([cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt).float())
        return x, z, delta, B, C, conv_state

    @staticmethod
    def _kept_indices(delta, decimate, protect):
        deci, s = decimate
        L = delta.shape[1]
        protect = min(protect, L)
        context = L - protect
        if context <= 0:
            return None
        k = deci.k(s, context)
        if k >= context:
            return None
        scores = delta[:, :context].norm(dim=-1)
        kept = select_kept(scores, k)
        tail = torch.arange(context, L, device=delta.device).expand(delta.shape[0], protect)
        return torch.cat([kept, tail], dim=1)

    def selective_scan(self, x, delta, B, C, h0=None):
        """x, delta: [B, L, D]; B, C: [B, L, N]. Returns y [B, L, D] and the last state [B, D, N]."""
        A = -torch.exp(self.A_log.float())
        h_last = h0
        ys = []
        for start in range(0, x.shape[1], SCAN_CHUNK):
            sl = slice(start, start + SCAN_CHUNK)
            d_c = delta[:, sl].transpose(1, 2)  # [B, D, T]
            a = torch.exp(d_c[:, :, None, :] * A[None, :, :, None])  # [B, D, N, T]
            b = (d_c * x[:, sl].transpose(1, 2))[:, :, None, :] * B[:, sl].transpose(1, 2)[:, None, :, :]
            if h_last is not None:
                b = torch.cat([b[..., :1] + a[..., :1] * h_last[..., None], b[..., 1:]], dim=-1)
            h = linear_scan(a.contiguous(), b.contiguous())
            ys.append(torch.einsum("bdnt,btn->btd", h, C[:, sl]))
            h_last = h[..., -1]
        y = torch.cat(ys, dim=1) + x * self.D.float()
        return y, h_last

    def step(self, u, conv_state, ssm_state):
        """One token. u: [B, d_model]; conv_state [B, D, d_conv]; ssm_state [B, D, N]."""
        cfg = self.cfg
        x, z = self.in_proj(u).chunk(2, dim=-1)
        conv_state = torch.cat([conv_state[:, :, 1:], x.float()[:, :, None]], dim=-1)
        w = self.conv1d.weight.float().squeeze(1)  # [D, d_conv]
        x = F.silu((conv_state * w).sum(-1) + self.conv1d.bias.float())
        dt, B, C = self.x_proj(x).split([cfg.dt_rank, cfg.d_state, cfg.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt).float())
        A = -torch.exp(self.A_log.float())
        ssm_state = torch.exp(delta[:, :, None] * A) * ssm_state + (delta * x)[:, :, None] * B[:, None, :]
        y = (ssm_state * C[:, None, :]).sum(-1) + self.D * x
        y = y * F.silu(z.float())
        return self.out_proj(y), conv_state, ssm_state


class MambaBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.eps)
        self.mixer = MambaMixer(cfg)


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList([MambaBlock(cfg) for _ in range(cfg.n_layer)])
        self.norm_f = RMSNorm(cfg.d_model, cfg.eps)


class MambaLM(nn.Module):
    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg)
        self._init_like_mamba()

    def _init_like_mamba(self):
        cfg = self.cfg
        nn.init.normal_(self.backbone.embeddings.weight, std=0.02)
        for layer in self.backbone.layers:
            m = layer.mixer
            dt = torch.exp(torch.rand(cfg.d_inner) * (math.log(0.1) - math.log(0.001)) + math.log(0.001)).clamp(min=1e-4)
            with torch.no_grad():
                m.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
                nn.init.uniform_(m.dt_proj.weight, -cfg.dt_rank ** -0.5, cfg.dt_rank ** -0.5)
                m.out_proj.weight.mul_(1 / math.sqrt(cfg.n_layer))

    def forward(self, ids, decimation=None, protect=1, last_n=None, with_states=False):
        """ids [B, L]. Returns dict(logits [B, P, V] for the last `last_n` kept positions (all if None),
        kept: [(layer, original positions [B, K])], states: [(conv, ssm)] per layer)."""
        hidden = self.backbone.embeddings(ids)
        residual = None
        positions = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        kept_log, states = [], []
        for i, layer in enumerate(self.backbone.layers):
            residual = hidden.float() if residual is None else residual + hidden.float()
            decimate = None
            if decimation is not None and i in decimation.layers:
                decimate = (decimation, decimation.layers.index(i))
            hidden, state, kept = layer.mixer(layer.norm(residual.to(hidden.dtype)), decimate, protect)
            if kept is not None:
                residual = gather_time(residual, kept)
                positions = torch.gather(positions, 1, kept)
                kept_log.append((i, positions))
            if with_states:
                states.append(state)
        final = residual + hidden.float()
        if last_n is not None:
            final, positions = final[:, -last_n:], positions[:, -last_n:]
        hidden = self.backbone.norm_f(final.to(hidden.dtype))
        logits = F.linear(hidden, self.backbone.embeddings.weight).float()
        return {"logits": logits, "positions": positions, "kept": kept_log, "states": states}

    @torch.no_grad()
    def step(self, token, states):
        """token [B]; states [(conv, ssm)] -> (logits [B, V], new states)."""
        hidden = self.backbone.embeddings(token).float()
        residual = None
        new_states = []
        for layer, (conv, ssm) in zip(self.backbone.layers, states):
            residual = hidden if residual is None else residual + hidden
            hidden, conv, ssm = layer.mixer.step(layer.norm(residual), conv, ssm)
            new_states.append((conv, ssm))
        logits = F.linear(self.backbone.norm_f(residual + hidden), self.backbone.embeddings.weight)
        return logits.float(), new_states

    @torch.no_grad()
    def greedy(self, ids, n_new, decimation=None, protect=1):
        """Prefill then n_new greedy steps (argmax ties to the lower id). Returns [B, n_new] and the prefill output."""
        out = self.forward(ids, decimation, protect, last_n=1, with_states=True)
        token = out["logits"][:, -1].argmax(-1)
        tokens, states = [token], out["states"]
        for _ in range(n_new - 1):
            logits, states = self.step(token, states)
            token = logits.argmax(-1)
            tokens.append(token)
        return torch.stack(tokens, dim=1), out
