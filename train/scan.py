"""The linear recurrence h_t = a_t * h_{t-1} + b_t, differentiable, along the last axis.

On CUDA it runs as a Triton associative scan (one program per row, the whole row in registers); the backward pass
is the same scan run in reverse time (the adjoint of a linear recurrence is a linear recurrence). Elsewhere it falls
back to a plain loop, which is what the CPU tests use.
"""
import torch

try:
    import triton
    import triton.language as tl

    @triton.jit
    def _combine(a_left, b_left, a_right, b_right):
        return a_right * a_left, a_right * b_left + b_right

    @triton.jit
    def _scan_rows(a_ptr, b_ptr, h_ptr, length, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < length
        a = tl.load(a_ptr + row * length + offs, mask=mask, other=1.0)
        b = tl.load(b_ptr + row * length + offs, mask=mask, other=0.0)
        _, h = tl.associative_scan((a, b), 0, _combine)
        tl.store(h_ptr + row * length + offs, h, mask=mask)

    HAVE_TRITON = True
except ImportError:  # CPU-only machines (CI, laptops)
    HAVE_TRITON = False

MAX_TRITON_BLOCK = 8192


def _scan_forward(a, b):
    if HAVE_TRITON and a.is_cuda and a.shape[-1] <= MAX_TRITON_BLOCK:
        a, b = a.contiguous().float(), b.contiguous().float()
        h = torch.empty_like(a)
        rows, length = a.numel() // a.shape[-1], a.shape[-1]
        block = max(16, triton.next_power_of_2(length))
        _scan_rows[(rows,)](a, b, h, length, BLOCK=block, num_warps=8 if block >= 2048 else 4)
        return h
    h = torch.empty_like(b)
    state = torch.zeros_like(b[..., 0])
    for t in range(b.shape[-1]):
        state = a[..., t] * state + b[..., t]
        h[..., t] = state
    return h


class LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        h = _scan_forward(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h):
        a, h = ctx.saved_tensors
        # lambda_t = g_t + a_{t+1} * lambda_{t+1}: the forward scan on time-reversed inputs.
        a_next = torch.cat([a[..., 1:], torch.ones_like(a[..., :1])], dim=-1)
        lam = _scan_forward(a_next.flip(-1), grad_h.float().flip(-1)).flip(-1)
        h_prev = torch.cat([torch.zeros_like(h[..., :1]), h[..., :-1]], dim=-1)
        return lam * h_prev, lam


def linear_scan(a, b):
    """h_t = a_t * h_{t-1} + b_t with h_{-1} = 0, along the last dim; fp32."""
    return LinearScan.apply(a.float(), b.float())
