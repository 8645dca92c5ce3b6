"""Benchmark: the smallest flip from psi against the exact minimum and against brute force.

    .venv/bin/python benchmarks/perturbation.py [--dim 8] [--curvature 0.5] [--rhs squashed] [--states 10]

On ``bistable_nd(dim, curvature=...)``: trains psi with ``sampling_region``, then from
``states`` states near attractor a prints, for each, the norm of psi's
smallest flip, the exact minimum (the same solver on the exact separatrix function
``separatrix_value``), the gap, whether simulation confirms the flip (``flips``), the best flip
of brute force by simulation (256 random directions and the straight line to the other
attractor) with its number of trajectories, and the solver's seconds.

    .venv/bin/python benchmarks/perturbation.py --gru [--rhs squashed] [--states 10] [--at-point] [--epochs N]

does the same on our 64-unit flip-flop GRU (rnn_params/flipflop_gru_64d) from ``states`` states
near each memory, where no exact minimum is known: psi's flip against brute force, both checked
by simulation (``relative_tol=0.5``: the memories are slow manifolds), and psi's flip refined
along its own direction by bisection on simulated trajectories (``refine_flip``), beside the
nearest point of the linearisation's hyperplane at the card's saddle, and that push refined too
(NaN where the refined push does not flip). ``--at-point``
centres the samples on the separatrix point, not the saddle; ``--epochs`` overrides the
recipe's 10000.
"""
import argparse
import time

import torch

import seplib as sl
from seplib.perturb import brute_force_flip, flips, smallest_flip


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--curvature", type=float, default=0.5)
    ap.add_argument("--rhs", default="squashed")
    ap.add_argument("--states", type=int, default=10)
    ap.add_argument("--directions", type=int, default=256)
    ap.add_argument("--gru", action="store_true", help="the 64-unit GRU instead of bistable_nd")
    ap.add_argument("--at-point", action="store_true",
                    help="GRU: sampling_region(saddle=None): the separatrix point and the sampled rate")
    ap.add_argument("--epochs", type=int, help="GRU: train this many epochs, not sampling_region's")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.gru:
        return gru(args)
    system = sl.bistable_nd(args.dim, curvature=args.curvature)
    a, b = (torch.tensor(p) for p in system.attractors)
    t = time.perf_counter()
    kef = sl.fit_kef(system, a, b, rhs=args.rhs, progress=False, device="cpu")
    print(f"bistable_nd({args.dim}, curvature {args.curvature}), {args.rhs}: psi trained in "
          f"{time.perf_counter() - t:.1f} s, {len(kef.loss_history_)} epochs")
    gen = torch.Generator().manual_seed(1)
    states = a + 0.25 * (b - a).norm() * torch.randn(args.states, args.dim, generator=gen) / args.dim**0.5
    print(f"{'state':>5s} {'psi flip':>9s} {'exact':>7s} {'gap':>7s} {'flips':>6s} {'brute':>7s} "
          f"{'trajectories':>12s} {'solver s':>8s}")
    gaps, ok, wins = [], 0, 0
    for i, x0 in enumerate(states):
        t = time.perf_counter()
        delta = smallest_flip(kef, x0)
        seconds = time.perf_counter() - t
        exact = smallest_flip(system.separatrix_value, x0)
        confirmed = flips(system, x0, delta, torch.stack((a, b)))
        best, n = brute_force_flip(system, x0, torch.stack((a, b)), n_directions=args.directions)
        gap = (delta.norm() / exact.norm() - 1).item()
        gaps.append(abs(gap))
        ok += confirmed
        wins += bool(confirmed) and best is not None and delta.norm() <= best.norm()
        print(f"{i:5d} {delta.norm():9.4f} {exact.norm():7.4f} {gap:+7.2%} {str(confirmed):>6s} "
              f"{float('nan') if best is None else best.norm():7.4f} {n:12d} {seconds:8.3f}", flush=True)
    print(f"largest |gap| {max(gaps):.2%}; flips confirmed {ok}/{len(states)}; confirmed and no larger "
          f"than brute force's on {wins}/{len(states)}")


def gru(args):
    model = sl.load_flipflop_gru(name="flipflop_gru_64d")
    card = sl.book_card("flipflop_gru_64d")
    field = sl.gru_vector_field(model, speed=card["field"]["speed"], dt=card["field"]["dt"])
    ab = torch.tensor(card["attractors"])
    a, b = ab
    t = time.perf_counter()
    region = sl.sampling_region(field, a, b, saddle=None if args.at_point else "auto")
    kef = sl.fit_kef(field, a, b, rhs=args.rhs, epochs=args.epochs, progress=False, device="cpu",
                     recipe=sl.Recipe(region))
    where = "the separatrix point" if args.at_point else "the saddle"
    print(f"GRU-64, {args.rhs} at {where}: psi trained in {time.perf_counter() - t:.1f} s, {len(kef.loss_history_)} epochs")
    gen = torch.Generator().manual_seed(1)
    noise = 0.25 * (b - a).norm() * torch.randn(2, args.states, 64, generator=gen) / 64**0.5
    states = torch.cat((a + noise[0], b + noise[1]))
    saddle = torch.tensor(card["saddle"])
    lin = sl.linearisation(field, saddle)
    print(f"{'state':>5s} {'memory':>6s} {'psi flip':>9s} {'verdict':>9s} {'refined':>8s} {'verdict':>9s} "
          f"{'traj.':>5s} {'refine s':>8s} {'linear':>7s} {'verdict':>9s} {'refined':>8s} {'brute':>7s} {'trajectories':>12s} "
          f"{'solver s':>8s}")
    ok = wins = refined_ok = refined_wins = linear_ok = 0

    def refine(x0, push):   # (refined push or None, trajectories, seconds, its verdict or "-")
        t = time.perf_counter()
        refined, m = sl.refine_flip(field, x0, push, ab, relative_tol=0.5)
        seconds = time.perf_counter() - t
        verdict = "-" if refined is None else sl.flip_verdict(field, x0, refined, ab, relative_tol=0.5)
        return refined, m, seconds, verdict

    for i, x0 in enumerate(states):
        t = time.perf_counter()
        try:
            delta = smallest_flip(kef, x0)
        except ValueError as err:     # the solver did not reach psi = 0: a miss, reported as such
            print(f"{i:5d} {'ab'[i >= args.states]:>6s} no zero found: {str(err)[:90]}", flush=True)
            continue
        seconds = time.perf_counter() - t
        verdict = sl.flip_verdict(field, x0, delta, ab, relative_tol=0.5)
        refined, m, refine_seconds, checked = refine(x0, delta)
        linear = -lin(x0) * lin.normal     # the nearest point of the saddle's hyperplane
        linear_verdict = sl.flip_verdict(field, x0, linear, ab, relative_tol=0.5)
        linear_ok += linear_verdict == "flips"
        linear_refined, _, _, linear_checked = refine(x0, linear)
        linear_refined_norm = linear_refined.norm().item() if linear_checked == "flips" else float("nan")
        best, n = brute_force_flip(field, x0, ab, n_directions=args.directions, relative_tol=0.5)
        brute = float("inf") if best is None else best.norm()
        ok += verdict == "flips"
        wins += verdict == "flips" and delta.norm() <= brute
        refined_ok += checked == "flips"
        refined_wins += checked == "flips" and refined.norm() <= brute
        print(f"{i:5d} {'ab'[i >= args.states]:>6s} {delta.norm():9.4f} {verdict:>9s} "
              f"{float('nan') if refined is None else refined.norm():8.4f} {checked:>9s} {m:5d} "
              f"{refine_seconds:8.2f} {linear.norm():7.4f} {linear_verdict:>9s} {linear_refined_norm:8.4f} {brute:7.4f} {n:12d} "
              f"{seconds:8.3f}", flush=True)
    print(f"psi's flip: confirmed {ok}/{len(states)}, confirmed and no larger than brute force's on "
          f"{wins}/{len(states)}; refined along its direction (refine_flip): confirmed {refined_ok}/{len(states)}, "
          f"confirmed and no larger than brute force's on {refined_wins}/{len(states)}; the linearisation's "
          f"flip confirmed {linear_ok}/{len(states)}")


if __name__ == "__main__":
    main()
