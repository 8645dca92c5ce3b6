"""Benchmark: fit_kef's recipes in two dimensions, on systems they were not tuned on.

    .venv/bin/python benchmarks/validation_family.py [--split held-out|tune|all] [--seeds 0,1,2]
                                                     [--recipe low_dim|default]

``--recipe low_dim`` (the default here) is ``sl.Recipe.low_dim()``, the switch the book's
two-dimensional chapters pass; ``--recipe default`` is ``fit_kef``'s own recipe, the one for
any dimension; ``--recipe default-stop`` is that recipe with the stop rule of low_dim
(``Training(tol=5e-3)``).

The family: 16 flip-flop networks with 2 hidden units (8 GRU, 8 tanh RNN), trained here by our
own seeded script with varied seeds, pulse probabilities, trial lengths, learning rates and
training lengths (some short, so they are trained less well), and 8 analytic systems with varied
parameters. Each member's split (tune or held-out) is fixed below, before any tuning: defaults
may be chosen on the tuning half only. Networks are cached in build/validation_family/.

For every member, both objectives and each seed: the five accuracy figures against ODE ground
truth (as benchmarks/kef_training.py: grid and mixture basin agreement, crossing median, p90 and
R^2), epochs, seconds, pass or miss, which of fit_kef's warnings it gave; then the pass rate per split.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import torch

import seplib as sl
from seplib.flipflop import train_flipflop
from seplib.rnn import flipflop_error

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kef_training import accuracy, ground_truth, meets  # noqa: E402

# fit_kef's warnings, by what their message says: the run's "fit_kef warned" column
WARNINGS = {"without its zero set settling": "unsettled", "does not tell apart the two attractors": "ends",
            "found no saddle": "no-saddle", "probe samples: it found no separatrix": "one-signed"}

CACHE = Path(__file__).resolve().parent.parent / "build" / "validation_family"

# name: (cell, seed, pulse_prob, n_steps, lr, training steps, split)
NETWORKS = {
    "gru-a": ("gru", 11, 0.05, 100, 1e-2, 1500, "tune"),
    "gru-b": ("gru", 12, 0.10, 60, 5e-3, 1200, "held-out"),
    "gru-c": ("gru", 13, 0.20, 40, 1e-2, 800, "tune"),
    "gru-d": ("gru", 14, 0.30, 100, 3e-3, 1500, "held-out"),
    "gru-e": ("gru", 15, 0.05, 60, 3e-3, 600, "held-out"),
    "gru-f": ("gru", 16, 0.10, 100, 1e-2, 400, "tune"),
    "gru-g": ("gru", 17, 0.20, 60, 5e-3, 1500, "held-out"),
    "gru-h": ("gru", 18, 0.30, 40, 1e-2, 1000, "tune"),
    "rnn-a": ("rnn", 21, 0.05, 100, 1e-2, 1500, "held-out"),
    "rnn-b": ("rnn", 22, 0.10, 60, 5e-3, 1200, "tune"),
    "rnn-c": ("rnn", 23, 0.20, 40, 1e-2, 800, "held-out"),
    "rnn-d": ("rnn", 24, 0.30, 100, 3e-3, 1500, "tune"),
    "rnn-e": ("rnn", 25, 0.05, 60, 3e-3, 600, "tune"),
    "rnn-f": ("rnn", 26, 0.10, 100, 1e-2, 400, "held-out"),
    "rnn-g": ("rnn", 27, 0.20, 60, 5e-3, 1500, "tune"),
    "rnn-h": ("rnn", 28, 0.30, 40, 1e-2, 1000, "held-out"),
}


def asymmetric_well(c=0.2):
    """dx/dt = x - x^3 + c, dy/dt = -y: two wells of different depth; separatrix x = the middle root."""
    return sl.System(f"asymmetric_well({c})", 2, lambda x: torch.stack(
        (x[..., 0] - x[..., 0] ** 3 + c, -x[..., 1]), dim=-1), [], [])


ANALYTIC = {   # name: (factory, split)
    "duffing-0.3": (lambda: sl.duffing(0.3), "tune"),
    "duffing-2": (lambda: sl.duffing(2.0), "held-out"),
    "curved-0.25": (lambda: sl.curved_bistable(0.25), "held-out"),
    "curved-1": (lambda: sl.curved_bistable(1.0), "tune"),
    "mutual-1.5": (lambda: sl.mutual_inhibition(1.5), "tune"),
    "mutual-3": (lambda: sl.mutual_inhibition(3.0), "held-out"),
    "asymmetric-0.2": (lambda: asymmetric_well(0.2), "held-out"),
    "asymmetric-0.3": (lambda: asymmetric_well(0.3), "tune"),
}


def network(name):
    cell, seed, pulse, n_steps, lr, steps, _ = NETWORKS[name]
    path = CACHE / f"{name}.pt"
    if path.is_file():
        model = sl.load_flipflop_gru(path)
    else:
        model = train_flipflop(2, seed=seed, steps=steps, lr=lr, cell=cell, progress=False,
                               task={"pulse_prob": pulse, "n_steps": n_steps})
        CACHE.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model


def member(name):
    """(field, attractors or None, split, note)."""
    if name in NETWORKS:
        model = network(name)
        field = sl.gru_vector_field(model, speed=6.0)
        note = f"task error {flipflop_error(model):.3f}"
        split = NETWORKS[name][-1]
    else:
        factory, split = ANALYTIC[name]
        field, note = factory(), ""
    attractors = sl.find_attractors(field, 2)
    return field, attractors, split, note


def recipe(name, rhs):
    if name == "low_dim":
        return sl.Recipe.low_dim()
    return sl.Recipe(training=sl.Training.for_rhs(rhs).replace(tol=5e-3)) if name == "default-stop" else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="held-out", choices=["held-out", "tune", "all"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--members", default=None, help="comma-separated names (default: the split's)")
    ap.add_argument("--recipe", default="low_dim", choices=["low_dim", "default", "default-stop"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.members.split(",") if args.members else [
        n for n, v in {**{k: v[-1] for k, v in NETWORKS.items()}, **{k: v[1] for k, v in ANALYTIC.items()}}.items()
        if args.split == "all" or v == args.split]
    print(f"{'member':15s} {'split':8s} {'objective':9s} {'seed':>4s} {'epochs':>6s} {'s':>5s} {'grid':>7s} "
          f"{'mixture':>7s} {'median':>7s} {'p90':>7s} {'R^2':>7s}  pass  fit_kef warned")
    tally = {}
    for name in names:
        field, attractors, split, note = member(name)
        if len(attractors) != 2:
            print(f"{name:15s} {split:8s} not bistable ({len(attractors)} attractors; {note}): left out")
            continue
        truth = ground_truth(field, attractors)
        for rhs in ("standard", "squashed"):
            for seed in seeds:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    kef = sl.fit_kef(field, *attractors, rhs=rhs, seed=seed, device="cpu", progress=False,
                                     recipe=recipe(args.recipe, rhs))
                said = ",".join(sorted({tag for w in caught for key, tag in WARNINGS.items()
                                        if key in str(w.message)}))
                acc = accuracy(kef, field, attractors, truth)
                ok = meets(acc)
                tally.setdefault(split, []).append(ok)
                print(f"{name:15s} {split:8s} {rhs:9s} {seed:4d} {len(kef.loss_history_):6d} {kef.fit_seconds_:5.1f} "
                      f"{acc['grid']:7.4f} {acc['mixture']:7.4f} {acc['median']:7.4f} {acc['p90']:7.4f} "
                      f"{acc['r2']:7.4f}  {'pass' if ok else 'MISS'}  {said or '-':14s} {note}", flush=True)
    for split, oks in tally.items():
        print(f"{split}: {sum(oks)}/{len(oks)} runs meet every target ({sum(oks) / len(oks):.1%})")
    print(json.dumps({k: [sum(v), len(v)] for k, v in tally.items()}))


if __name__ == "__main__":
    main()
