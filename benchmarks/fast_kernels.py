"""Benchmark: what each CPU kernel of seplib/_fast.py buys against its plain PyTorch twin.

    .venv/bin/python benchmarks/fast_kernels.py [--steps 300] [--rounds 5]

One fit_kef training step at the default settings (the default network, 6 scales x 96 samples
plus 96 trajectory pairs, Duffing's field, squashed and standard objectives), built from:
  tangent: _fast.tanh_mlp_tangent | forward-mode AD (fwAD) | torch.func.jvp
  loss:    _fast.loss_and_grad    | autograd through kef.kef_loss + kef.pair_loss
  adam:    _fast.FlatAdam         | torch.optim.Adam(foreach=True) | torch.optim.Adam(fused=True)
Prints the median time per step over ``rounds`` rounds (the variants alternate within a round,
so the machine's drift hits them alike), and the first use of torch.optim.Adam in a process.
Run it alone: another torch process on the machine slows both.
"""
import argparse
import statistics
import subprocess
import sys
import time

import torch
import torch.autograd.forward_ad as fwAD

import seplib as sl
from seplib import _fast
from seplib.kef import BOUNDS, OBJECTIVES, PAIR_LOG_SCALE, kef_loss, mlp, pair_loss

SCALES, BATCH = 6, 96


def batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = 2 * torch.randn(SCALES * BATCH + 2 * BATCH, 2, generator=gen)
    fx = sl.duffing()(x[:SCALES * BATCH])
    perm = torch.rand(BATCH, generator=gen).argsort()
    t = torch.rand(BATCH, generator=gen)
    return x, fx, perm, t


def tangent_fwad(net, x, v):
    tangent = torch.cat((v, v.new_zeros(len(x) - len(v), v.shape[-1])))
    with fwAD.dual_level():
        psi, dpsi = fwAD.unpack_dual(net(fwAD.make_dual(x, tangent)))
    return psi, dpsi[:len(v)]


def tangent_func(net, x, v):
    tangent = torch.cat((v, v.new_zeros(len(x) - len(v), v.shape[-1])))
    psi, dpsi = torch.func.jvp(net, (x,), (tangent,))
    return psi, dpsi[:len(v)]


TANGENTS = {"fast": _fast.tanh_mlp_tangent, "fwAD": tangent_fwad, "func.jvp": tangent_func}


def make_step(rhs, tangent, loss, adam, eigenvalue=0.25):
    net = mlp(2)
    x, fx, perm, t = batch()
    n = len(fx)
    if adam == "fast":
        opt = _fast.FlatAdam(net.parameters())
        update = lambda: opt.step(1e-3)  # noqa: E731
    else:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, **{adam: True})

        def update():
            opt.step()
            opt.zero_grad(set_to_none=True)

    def step():
        psi, dpsi = TANGENTS[tangent](net, x, fx)
        if loss == "fast":
            value, g_psi, g_dpsi = _fast.loss_and_grad(psi.detach(), dpsi.detach(), rhs, eigenvalue, 1.0, perm,
                                                       bound=BOUNDS[rhs], pair_weight=10.0, t=t,
                                                       log_scale=PAIR_LOG_SCALE)
            torch.autograd.backward((psi, dpsi), (g_psi, g_dpsi))
        else:
            value = kef_loss(psi[:n].reshape(-1, BATCH, 1), dpsi.reshape(-1, BATCH, 1), OBJECTIVES[rhs],
                             eigenvalue, 1.0, perm, bound=BOUNDS[rhs])
            value = value + 10.0 * pair_loss(*psi[n:].reshape(2, BATCH), t, rhs, eigenvalue, perm)
            value.backward()
        value.item()
        update()

    return step


VARIANTS = {   # name: (tangent, loss, adam)
    "all fast (fit_kef)": ("fast", "fast", "fast"),
    "tangent: fwAD": ("fwAD", "fast", "fast"),
    "tangent: func.jvp": ("func.jvp", "fast", "fast"),
    "loss: autograd": ("fast", "autograd", "fast"),
    "adam: torch foreach": ("fast", "fast", "foreach"),
    "adam: torch fused": ("fast", "fast", "fused"),
    "all plain (fwAD, autograd, foreach)": ("fwAD", "autograd", "foreach"),
}


def first_adam_use():
    """Seconds for the first torch.optim.Adam step in a fresh process (it imports torch._dynamo)."""
    code = ("import time, torch; net = torch.nn.Linear(2, 1); net(torch.ones(1, 2)).sum().backward(); "
            "t = time.perf_counter(); torch.optim.Adam(net.parameters()).step(); print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def tanh_against_sigmoid(reps=2000):
    z = torch.randn(768, 96)
    out = {}
    for name, fn in (("torch.tanh", torch.tanh), ("2 sigmoid(2z) - 1", lambda z: _fast._tanh(z.clone()))):
        for _ in range(100):
            fn(z)
        t = time.perf_counter()
        for _ in range(reps):
            fn(z)
        out[name] = (time.perf_counter() - t) / reps * 1e6
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; one step = {SCALES} x {BATCH} samples "
          f"+ {BATCH} pairs, tanh MLP 2-96-96-96-1")
    print(f"first torch.optim.Adam step in a fresh process: {first_adam_use():.2f} s")
    print("tanh on [768, 96]: " + ", ".join(f"{k} {v:.0f} us" for k, v in tanh_against_sigmoid().items()))
    for rhs in ("squashed", "standard"):
        steps = {name: make_step(rhs, *parts) for name, parts in VARIANTS.items()}
        times = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                for _ in range(20):
                    step()
                t = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - t) / args.steps)
        base = statistics.median(times["all fast (fit_kef)"])
        print(f"\nobjective {rhs}: median ms per step over {args.rounds} rounds of {args.steps} steps")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"  {name:38s} {1e3 * m:6.3f} ms   {m / base:5.2f}x the fast step")


if __name__ == "__main__":
    main()
