"""CPU speed kernels for fit_kef, each the written-out twin of a plain PyTorch path in kef.py.

On a CPU most of a KEF epoch (3-4 ms) goes to launching small operations, not to arithmetic.
Each kernel here does the same arithmetic in fewer operations; tests/test_fast.py holds each
equal to its plain twin, and benchmarks/fast_kernels.py measures what each buys
(benchmarks/RESULTS.md):

- ``tanh_mlp_tangent``: psi and grad psi . f for a tanh MLP (the default network), forward and
  backward written out; twin: forward-mode AD (``kef.directional_derivative`` on other modules).
- ``loss_and_grad``: the loss of a named objective and its gradient in psi and grad psi . f;
  twin: autograd through ``kef.kef_loss`` and ``kef.pair_loss``.
- ``FlatAdam``: Adam on one flat buffer holding every parameter; twin: ``torch.optim.Adam``
  (the same steps, but where its update clipping acts).
"""
import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable

def is_tanh_mlp(net):
    """Is net Linear, Tanh, Linear, Tanh, ..., Linear, like ``mlp`` makes?"""
    kinds = [type(m) for m in net] if isinstance(net, nn.Sequential) else []
    return len(kinds) % 2 == 1 and kinds == [nn.Linear, nn.Tanh] * (len(kinds) // 2) + [nn.Linear]


def _tanh(z):
    """tanh(z) as 2 sigmoid(2z) - 1, in place on z: torch's CPU tanh is several times slower
    than its sigmoid (benchmarks/RESULTS.md); the error is a few float32 ulps."""
    return torch.sigmoid(z.mul_(2)).mul_(2).sub_(1)


class TanhMLPTangent(torch.autograd.Function):
    """psi(x) and grad psi(x) . v for a tanh MLP with weights ``params`` (W1, b1, ..., Wo, bo),
    forward and backward written out: one layer of values h and tangents t is
        h' = tanh(W h + b),   t' = s * (W t),   s = 1 - h'^2,
    and the backward runs the same layers in reverse, so autograd keeps one node, not ~50.
    Only the first ``len(v)`` rows of x carry a tangent; the rest get psi alone."""

    @staticmethod
    def forward(ctx, x, v, *params):
        n = len(v)
        h, t, saved = x, v, []
        for W, b in zip(params[:-2:2], params[1:-2:2]):
            u = t @ W.T
            h_next = _tanh(torch.addmm(b, h, W.T))
            s = 1 - h_next * h_next
            saved.append((h, t, s, u))
            h, t = h_next, s[:n] * u
        saved.append((h, t, None, None))
        W, b = params[-2:]
        ctx.params, ctx.saved = params, saved
        return torch.addmm(b, h, W.T), t @ W.T

    @staticmethod
    @once_differentiable  # a second derivative through this backward raises, not goes wrong
    def backward(ctx, g_h, g_t):
        params, saved = ctx.params, ctx.saved
        grads = [None] * len(params)
        for layer in reversed(range(len(params) // 2)):
            W = params[2 * layer]
            h, t, _, _ = saved[layer]           # this layer's inputs
            grads[2 * layer] = torch.addmm(g_t.T @ t, g_h.T, h)
            grads[2 * layer + 1] = g_h.sum(0)
            if layer == 0:
                break
            g_h, g_t = g_h @ W, g_t @ W         # gradients of h and t
            _, _, s, u = saved[layer - 1]       # how h and t were made from the layer below
            n = len(u)
            g_h[:n].addcmul_(h[:n] * u, g_t, value=-2)   # t = s u depends on h through s = 1 - h^2
            g_h, g_t = g_h.mul_(s), g_t.mul_(s[:n])      # tanh'(z) = s
        g_x = g_h @ params[0] if ctx.needs_input_grad[0] else None
        g_v = g_t @ params[0] if ctx.needs_input_grad[1] else None
        return (g_x, g_v, *grads)


def tanh_mlp_tangent(net, x, v):
    """psi(x) and grad psi(x) . v for a tanh MLP (``is_tanh_mlp``); only the first ``len(v)`` rows
    of x carry a tangent."""
    params = [p for layer in net if isinstance(layer, nn.Linear) for p in (layer.weight, layer.bias)]
    return TanhMLPTangent.apply(x, v, *params)


# R(psi) and R'(psi) of the named objectives (kef.OBJECTIVES holds R alone)
RHS_AND_SLOPE = {
    "standard": lambda psi: (psi, torch.ones_like(psi)),
    "squashed": lambda psi: (psi - psi**3, 1 - 3 * psi**2),
}


def carried_and_slope(rhs, psi, e):
    """psi carried for a time t by  dpsi/dt = lambda R(psi),  in closed form for a named R, with
    e = exp(lambda t); and its derivative in the starting psi."""
    if rhs == "standard":
        return psi * e, e
    q = 1 + psi**2 * (e**2 - 1)   # squashed: psi(t) = psi e / sqrt(1 - psi^2 + psi^2 e^2)
    return psi * e / q.sqrt(), e / q**1.5


def _on_log_scale(psi, c):
    """asinh(psi / c), on which the standard objective's pairs are compared, and its derivative
    in psi, 1 / sqrt(c^2 + psi^2)."""
    return torch.asinh(psi / c), (c * c + psi * psi).rsqrt()


def _normalised(gap, shuffled_gap):
    """mean(gap^2) / mean(shuffled_gap^2) along the last axis, and its gradients in both."""
    n = gap.shape[-1]
    residual = gap.square().mean(-1, keepdim=True)
    shuffled = shuffled_gap.square().mean(-1, keepdim=True)
    return residual / shuffled, gap * (2 / n / shuffled), shuffled_gap * (-2 / n * residual / shuffled**2)


def loss_and_grad(psi, dpsi, rhs, eigenvalue, balance_weight, perm, min_side=0.2, bound=None,
                  pair_weight=0.0, t=None, log_scale=0.1):
    """``kef.kef_loss`` plus ``pair_weight * kef.pair_loss``, for a named objective, with its
    gradient in psi and dpsi written out: autograd's graph of this loss and its backward has about
    650 small operations. The standard objective's pairs are compared on asinh(psi / log_scale).

    ``psi`` holds psi at the samples, ``n_scales`` blocks of ``n = len(perm)``, then, with ``t``
    given, at the pairs' ``n`` starts and ``n`` ends; ``dpsi`` holds grad psi . f at the samples.
    Returns ``(loss, d loss / d psi, d loss / d dpsi)``, the gradients shaped like the inputs.
    The balance adds a few ``.item()`` calls, a sync each on a GPU."""
    n, m = len(perm), len(dpsi)
    p, a = psi[:m].view(-1, n), dpsi.view(-1, n) / eigenvalue   # [n_scales, n]: psi, dpsi / lambda
    r, slope = RHS_AND_SLOPE[rhs](p)
    ratio, g_gap, g_shuffled = _normalised(a - r, a - r[:, perm])
    loss = ratio.mean()
    g_gap, g_shuffled = g_gap / len(p), g_shuffled / len(p)    # the mean over the scales
    g_r = -g_gap
    g_r[:, perm] -= g_shuffled                                  # r[:, perm][i] is r[perm[i]]
    g_p = g_r * slope
    g_dpsi = (g_gap + g_shuffled) / eigenvalue

    # the balance (see kef_loss): it has a gradient only while one sign holds < min_side
    if bound is None:
        sd = p.std()
        q = torch.sigmoid(10 * p / sd)
        positive = q.mean()
        if min(positive.item(), 1 - positive.item()) < min_side:
            w = q * (1 - q)   # d positive / d p, sd depending on p too
            d_positive = 10 / (m * sd) * (w - (p - p.mean()) * (w * p).sum() / ((m - 1) * sd**2))
            minority = torch.minimum(positive, 1 - positive)
            loss = loss + balance_weight * (min_side - minority) / min_side
            g_p += (-balance_weight / min_side) * (d_positive if positive.item() < 0.5 else -d_positive)
    else:
        above, below = p > 0, p < 0
        pos, neg = (p * above).mean(), -(p * below).mean()
        total = pos + neg + 1e-12
        minority = torch.minimum(pos, neg) / total
        if minority.item() < min_side:
            if pos.item() <= neg.item():   # minority = pos / total
                d_minority = ((neg + 1e-12) * above + pos * below) / (m * total**2)
            else:                          # minority = neg / total
                d_minority = -(neg * above + (pos + 1e-12) * below) / (m * total**2)
            loss = loss + balance_weight * (min_side - minority) / min_side
            g_p += (-balance_weight / min_side) * d_minority
        excess = torch.relu(p.abs() - bound)
        loss = loss + excess.square().mean()
        g_p += (2 / m) * excess * p.sign()

    g_psi = [g_p.reshape(-1)]
    if t is not None:   # the pairs (see pair_loss)
        start, end = psi[m:].view(2, n)
        e = torch.exp(eigenvalue * t.reshape(start.shape))
        carried, c_slope = carried_and_slope(rhs, start, e)
        carried_shuffled, s_slope = carried_and_slope(rhs, start[perm], e)
        d_end = 1.0
        if rhs == "standard":   # compared on a log scale, as in pair_loss
            (end, d_end), (carried, d_carried), (carried_shuffled, d_shuffled) = (
                _on_log_scale(v, log_scale) for v in (end, carried, carried_shuffled))
            c_slope, s_slope = c_slope * d_carried, s_slope * d_shuffled
        ratio, g_gap, g_shuffled = _normalised(end - carried, end - carried_shuffled)
        loss = loss + pair_weight * ratio.squeeze()
        g_start = -pair_weight * g_gap * c_slope
        g_start[perm] -= pair_weight * g_shuffled * s_slope     # start[perm][i] is start[perm[i]]
        g_psi += [g_start, pair_weight * (g_gap + g_shuffled) * d_end]
    return loss, torch.cat(g_psi).view(psi.shape), g_dpsi.view(dpsi.shape)


class FlatAdam:
    """Adam (Kingma and Ba) with the learning rate given at each step, on all the parameters at
    once: they are moved into one flat buffer, so a step is a handful of tensor operations
    whatever the number of layers, and ``flat`` is the whole network's weights, which fit_kef
    averages and swaps in one copy. torch.optim.Adam takes the same steps, but for one thing.

    Update clipping (Shazeer and Stern's Adafactor): where the root mean square of Adam's
    update m / sqrt(v) over all the weights exceeds ``clip``, the update is scaled down to it.
    In steady training it stays below 1 and nothing changes; after a sudden jump of the
    gradient it reaches about 3, and at a learning rate of 1e-2 such steps threw a 64-D fit
    onto the trivial psi, from which it took thousands of epochs to come back
    (benchmarks/RESULTS.md, section 4). ``clipped`` counts the steps it scaled."""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8, clip=1.0):
        self.params = [p for p in params if p.requires_grad]
        if len({(p.dtype, p.device) for p in self.params}) > 1:
            raise ValueError("the model's parameters must share one dtype and device")
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        for p, part in zip(self.params, self.flat.split([p.numel() for p in self.params])):
            p.data = part.view_as(p)  # the parameters become views of the flat buffer
        self.m, self.v = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        (self.beta1, self.beta2), self.eps, self.steps = betas, eps, 0
        self.clip, self.clipped = clip, 0

    def step(self, lr):
        """One update from the parameters' .grad, which it then clears."""
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                       for p in self.params])
        for p in self.params:
            p.grad = None
        self.steps += 1
        self.m.lerp_(g, 1 - self.beta1)
        self.v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = self.v.sqrt().div_(math.sqrt(1 - self.beta2**self.steps)).add_(self.eps)
        correction = 1 - self.beta1**self.steps   # m's bias correction
        scale = lr / correction
        if self.clip is not None:
            rms = (self.m / denom).square().mean().sqrt().item() / correction
            if rms > self.clip:
                scale, self.clipped = scale * self.clip / rms, self.clipped + 1
        self.flat.addcdiv_(self.m, denom, value=-scale)


