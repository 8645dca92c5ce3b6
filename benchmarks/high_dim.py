"""Many dimensions: fit_kef with sampling_region on bistable_nd, against the exact separatrix.

    .venv/bin/python benchmarks/high_dim.py --dims 8,32,128 --seeds 0,1,2

For each dimension and system seed: the attractors from find_attractors (its defaults), psi
trained with ``sampling_region(field, a, b, rhs)`` (``--no-radial``: without its radial input),
and then
- basin agreement on 3000 points of ``segment_clouds`` (norms 0.1-1 x |b - a|), labelled by
  the sign of the exact ``separatrix_value``;
- the crossing error along 200 random curves between the attractors (bisection on the ODE),
  median and p90 as fractions of |b - a|, and R^2 of the crossing positions;
- seconds per KEF, and the seconds it takes to label the same 3000 points by simulation
  (``basin_labels``), which is what the exact labels spare us.
The recipe was chosen on system seed 0; seeds 1 and 2 are held out.

    .venv/bin/python benchmarks/high_dim.py --gru --seeds 0,1,2

does the same on our 64-unit flip-flop GRU (rnn_params/flipflop_gru_64d), whose memories are
slow manifolds: the labels come from simulation (``basin_labels`` with ``relative_tol=0.5``),
the seeds are fit_kef's, and beside psi it scores the linearisation at the saddle and a
re-implementation of the reference's high-dimensional recipe (a residual MLP 500 wide with 8
blocks, squashed, lambda = 1, Gaussians at the separatrix point with covariance 2 I times 0.1,
1 and 3, 256 samples per scale, Adam 1e-3, 500 epochs). ``--classifier 2000,20000`` adds what the
same agreement costs as labels alone: psi's default network (its radial input included) trained
as a classifier on that many states drawn from the scoring clouds' own law (another seed),
labelled by simulation, with the seconds that labelling took.
The book's GRU is held out: tune on another network of the same recipe, made with

    .venv/bin/python -m seplib.flipflop --hidden 64 --seed 1 --out /tmp/gru64_seed1/
    .venv/bin/python benchmarks/high_dim.py --gru --network /tmp/gru64_seed1/ --no-reference

(seeds 1 and 2 were the tuning networks; networks made with seeds 3 and 4 after the recipe was
fixed are held out too, as the book's is). Agreement on 3000 points carries a standard error
of about 0.0018 at 0.99; the summary prints it. ``--points 30000`` scores on 30000 (another set,
standard error 0.0006).

    .venv/bin/python benchmarks/high_dim.py --family saddle [--split tune|held-out|all]

does the same on ``saddle_nd``: separatrices that bend both ways (a fraction ``flip`` of the
directions bends towards the other attractor), each direction by its own amount, with the
saddle off the middle of the segment (``beta``) and away from the origin (``shift``). Its
members and their split are fixed in SADDLE_FAMILY below, before any tuning: tune on the
"tune" half only; the held-out half (d = 16, 48, 128) reports. The attractors are the system's
own (``find_attractors`` missed one of saddle-32a's).

Targets: agreement >= 0.99, median <= 0.005, p90 <= 0.015, R^2 >= 0.998, <= 60 s per KEF.
"""
import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

import seplib as sl

CLOUD_POINTS = 3000   # segment_clouds points for basin agreement
# saddle_nd members, fixed 2026-12-07 before any tuning on them:
# name: (dim, seed, curvature, flip, beta, shift, split)
SADDLE_FAMILY = {
    "saddle-2": (2, 10, 0.5, 1.0, 0.5, 1.0, "tune"),
    "saddle-8": (8, 11, 0.5, 0.5, 0.5, 1.0, "tune"),
    "saddle-32a": (32, 12, 0.5, 0.5, 0.4, 1.0, "tune"),
    "saddle-32b": (32, 13, 0.8, 0.3, 0.7, 2.0, "tune"),
    "saddle-64": (64, 14, 0.5, 0.5, 0.5, 1.5, "tune"),
    "saddle-16": (16, 20, 0.5, 0.5, 0.6, 1.0, "held-out"),
    "saddle-48": (48, 21, 0.6, 0.5, 0.4, 1.5, "held-out"),
    "saddle-128": (128, 22, 0.5, 0.4, 0.5, 1.0, "held-out"),
}
TARGETS = {"agree": 0.99, "median": 0.005, "p90": 0.015, "r2": 0.998, "seconds": 60.0}


def passes(row):
    return (row["agree"] >= TARGETS["agree"] and row["median"] <= TARGETS["median"]
            and row["p90"] <= TARGETS["p90"] and row["r2"] >= TARGETS["r2"]
            and row["seconds"] <= TARGETS["seconds"])


def run(dim, seed, objectives, label_by_simulation=True, radial=True, points=CLOUD_POINTS, system=None):
    if system is None:
        system = sl.bistable_nd(dim, seed=seed)
        a, b = sl.find_attractors(system, dim)
    else:   # saddle_nd: its exact attractors (find_attractors' starts around the origin can all
        # land in one basin when the saddle is off the origin and near one attractor)
        a, b = torch.tensor(system.attractors, dtype=torch.float32)
    dist = (b - a).norm().item()
    x = sl.segment_clouds(a, b, points)
    exact = (system.separatrix_value(x) > 0).long()
    sim_seconds = float("nan")
    if label_by_simulation:
        t = time.perf_counter()
        simulated = sl.basin_labels(system, x, torch.stack((a, b)))
        sim_seconds = time.perf_counter() - t
        kept = simulated >= 0
        # the simulated labels name a's basin 0; the exact ones name b's side positive
        same = (simulated[kept] == exact[kept]).float().mean().item()
        same = max(same, 1 - same)
        print(f"  d={dim} seed {seed}: labelling {points} points by simulation took {sim_seconds:.1f} s, "
              f"{kept.float().mean().item():.4f} labelled, agreeing with the exact sign on {same:.4f}",
              flush=True)
    s_true = None
    rows = []
    for rhs in objectives:
        t = time.perf_counter()
        region = sl.sampling_region(system, a, b)
        kef = sl.fit_kef(system, a, b, rhs=rhs, progress=False, device="cpu", seed=0,
                         recipe=sl.Recipe(region if radial else region.replace(radial=None)))
        seconds = time.perf_counter() - t
        err = sl.separatrix_error(kef, system, a, b, n_curves=200, s_true=s_true)
        s_true = err["s_true"]
        row = {"dim": dim, "seed": seed, "rhs": rhs, "seconds": seconds, "sim_seconds": sim_seconds,
               "agree": sl.basin_agreement(kef, x, exact), "median": err["median"] / dist,
               "p90": err["p90"] / dist, "r2": err["r2"], "lam": kef.eigenvalue}
        row["pass"] = passes(row)
        rows.append(row)
        print(f"  d={dim:3d} seed {seed} {rhs:9s} lambda {row['lam']:.2f} {seconds:5.1f} s  agree "
              f"{row['agree']:.4f}  median {row['median']:.4f}  p90 {row['p90']:.4f}  R^2 "
              f"{row['r2']:.4f}  {'pass' if row['pass'] else 'MISS'}", flush=True)
    return rows


class ResidualMLP(nn.Module):
    """The reference's network for many dimensions: dim -> width, ``blocks`` residual blocks
    h + W2 tanh(W1 h), tanh, -> 1."""

    def __init__(self, dim, width=500, blocks=8):
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                                                  nn.Linear(width, width)) for _ in range(blocks))
        self.out = nn.Sequential(nn.Tanh(), nn.Linear(width, 1))

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def _score(name, kef, field, a, b, x, labels, s_true, seconds, seed):
    dist = (b - a).norm().item()
    err = sl.separatrix_error(kef, field, a, b, n_curves=200, s_true=s_true)
    row = {"dim": 64, "seed": seed, "rhs": name, "seconds": seconds, "agree": sl.basin_agreement(kef, x, labels),
           "median": err["median"] / dist, "p90": err["p90"] / dist, "r2": err["r2"]}
    row["pass"] = passes(row)
    print(f"  GRU-64 seed {seed} {name:9s} {seconds:6.1f} s  agree {row['agree']:.4f}  median "
          f"{row['median']:.4f}  p90 {row['p90']:.4f}  R^2 {row['r2']:.4f}  {'pass' if row['pass'] else 'MISS'}",
          flush=True)
    return row, err["s_true"]


def fit_classifier(x, y, centre, radius, seed, steps=4000, batch=512, lr=1e-3):
    """psi's default network (radial input included) trained as a classifier: logistic loss on
    states ``x`` of known basin ``y`` (True: b's), Adam with a cosine decay. Returns the logit."""
    torch.manual_seed(seed)
    net = sl.kef.mlp(x.shape[-1], radial=(centre, radius))
    opt = torch.optim.Adam(net.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    sign = y.float() * 2 - 1
    for _ in range(steps):
        i = torch.randint(len(x), (batch,))
        loss = nn.functional.softplus(-sign[i] * net(x[i]).flatten()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()


def run_classifiers(sizes, seeds, field, a, b, x, labels, s_true, centre):
    """The same network trained as a classifier on ``n`` states of the scoring clouds' own law,
    labelled by simulation: what psi's agreement would cost as labels alone."""
    rows = []
    for n in sizes:
        t = time.perf_counter()
        states = sl.segment_clouds(a, b, n, seed=1)     # the scoring clouds are seed 0
        found = sl.basin_labels(field, states, torch.stack((a, b)), relative_tol=0.5)
        labelling = time.perf_counter() - t
        states, to_b = states[found >= 0], found[found >= 0] == 1
        for seed in seeds:
            t = time.perf_counter()
            net = fit_classifier(states, to_b, centre, (b - a).norm().item(), seed)
            row, _ = _score(f"clf {n}", net, field, a, b, x, labels, s_true, time.perf_counter() - t, seed)
            row["sim_seconds"] = labelling
            rows.append(row)
        print(f"  classifier on {n} states: labelling them by simulation took {labelling:.1f} s", flush=True)
    return rows


def run_gru(seeds, objectives, reference=True, at_point=False, epochs=None, radial=True, network=None,
            classifier=(), points=CLOUD_POINTS):
    if network is None:
        model = sl.load_flipflop_gru(name="flipflop_gru_64d")
        card = sl.book_card("flipflop_gru_64d")    # its attractors, separatrix point and saddle
    else:
        model = sl.load_flipflop_gru(network / "model.pt")
        card = json.loads((network / "card.json").read_text())
    field = sl.gru_vector_field(model, speed=card["field"]["speed"], dt=card["field"]["dt"])
    a, b = torch.tensor(card["attractors"])
    x = sl.segment_clouds(a, b, points)
    t = time.perf_counter()
    labels = sl.basin_labels(field, x, torch.stack((a, b)), relative_tol=0.5)
    print(f"  GRU-64: labelling {points} points by simulation took {time.perf_counter() - t:.1f} s, "
          f"{(labels >= 0).float().mean().item():.4f} labelled", flush=True)
    point, saddle = torch.tensor(card["separatrix_point"]), torch.tensor(card["saddle"])
    _, s_true = _score("linear", sl.linearisation(field, saddle), field, a, b, x, labels, None, 0.0, "-")
    rows = []
    for seed in seeds:
        for rhs in objectives:
            t = time.perf_counter()
            region = sl.sampling_region(field, a, b, saddle=None if at_point else "auto")
            kef = sl.fit_kef(field, a, b, rhs=rhs, epochs=epochs, progress=False, device="cpu", seed=seed,
                             recipe=sl.Recipe(region if radial else region.replace(radial=None)))
            name = rhs + ("@point" if at_point else "")
            rows.append(_score(name, kef, field, a, b, x, labels, s_true, time.perf_counter() - t, seed)[0])
        if reference:
            torch.manual_seed(seed)       # the residual MLP's initial weights
            t = time.perf_counter()
            ref = sl.Recipe(sl.Sampling(point, 2 * torch.eye(64), scales=(0.1, 1.0, 3.0)),
                            sl.Training(epochs=500, batch_size=256, lr=1e-3, flow_time=None, pair_weight=10.0),
                            refinement=None, model=ResidualMLP(64))
            kef = sl.fit_kef(field, a, b, rhs="squashed", eigenvalue=1.0, recipe=ref, seed=seed, progress=False,
                             device="cpu")
            rows.append(_score("reference", kef, field, a, b, x, labels, s_true, time.perf_counter() - t,
                               seed)[0])
    return rows + run_classifiers(classifier, seeds, field, a, b, x, labels, s_true, saddle)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="8,32,128")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rhs", default="squashed,standard")
    ap.add_argument("--no-simulation", action="store_true", help="skip timing basin_labels")
    ap.add_argument("--gru", action="store_true", help="the 64-unit GRU instead of bistable_nd")
    ap.add_argument("--no-reference", action="store_true", help="GRU: skip the reference recipe")
    ap.add_argument("--at-point", action="store_true",
                    help="GRU: sampling_region(saddle=None): the separatrix point and the sampled rate")
    ap.add_argument("--no-radial", action="store_true",
                    help="sampling_region(radial=False): no |x - saddle|^2 input")
    ap.add_argument("--network", type=Path, help="GRU: another network's folder (model.pt, card.json), "
                    "as `python -m seplib.flipflop` writes it")
    ap.add_argument("--epochs", type=int, help="GRU: train this many epochs, not sampling_region's")
    ap.add_argument("--points", type=int, default=CLOUD_POINTS,
                    help="score on this many segment_clouds points (seed 0), not 3000")
    ap.add_argument("--family", default="bowl", choices=["bowl", "saddle"],
                    help="bistable_nd (bowl) or the saddle_nd members of SADDLE_FAMILY")
    ap.add_argument("--split", default="all", choices=["tune", "held-out", "all"], help="--family saddle: which half")
    ap.add_argument("--members", default="", help="--family saddle: only these names, comma-separated")
    ap.add_argument("--classifier", default="", help="GRU: also train psi's network as a classifier on "
                    "this many simulated states of the clouds' own law, e.g. 2000,20000")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    seeds = [int(v) for v in args.seeds.split(",")]
    if args.gru:
        rows = run_gru(seeds, [r for r in args.rhs.split(",") if r], not args.no_reference, args.at_point, args.epochs,
                       not args.no_radial, args.network,
                       [int(v) for v in args.classifier.split(",") if v], args.points)
    if args.family == "saddle" and not args.gru:
        for name, (dim, seed, curvature, flip, beta, shift, split) in SADDLE_FAMILY.items():
            if args.split in ("all", split) and (not args.members or name in args.members.split(",")):
                print(f"{name} ({split}): saddle_nd({dim}, seed={seed}, curvature={curvature}, flip={flip}, "
                      f"beta={beta}, shift={shift})", flush=True)
                system = sl.saddle_nd(dim, seed=seed, curvature=curvature, flip=flip, beta=beta, shift=shift)
                for row in run(dim, seed, args.rhs.split(","), not args.no_simulation, not args.no_radial,
                               args.points, system):
                    rows.append(row | {"split": split})
    for dim in [] if args.gru or args.family == "saddle" else [int(v) for v in args.dims.split(",")]:
        for seed in seeds:
            rows += run(dim, seed, args.rhs.split(","), not args.no_simulation, not args.no_radial, args.points)
    print("\n| d | objective | seeds | seconds | agreement | median | p90 | R^2 | every target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dim in sorted({r["dim"] for r in rows}):
        for rhs in dict.fromkeys(r["rhs"] for r in rows if r["dim"] == dim):   # in the order run
            rs = [r for r in rows if r["dim"] == dim and r["rhs"] == rhs]
            print(f"| {dim} | {rhs} | {','.join(str(r['seed']) for r in rs)} | "
                  f"{min(r['seconds'] for r in rs):.1f}-{max(r['seconds'] for r in rs):.1f} | "
                  f"{min(r['agree'] for r in rs):.4f} | {max(r['median'] for r in rs):.4f} | "
                  f"{max(r['p90'] for r in rs):.4f} | {min(r['r2'] for r in rs):.4f} | "
                  f"{sum(r['pass'] for r in rs)}/{len(rs)} |")
    se = (TARGETS["agree"] * (1 - TARGETS["agree"]) / args.points) ** 0.5
    print(f"\nagreement on {args.points} points: at {TARGETS['agree']} its standard error is {se:.4f}; "
          "runs closer than that are not told apart")
    print(f"every target: {sum(r['pass'] for r in rows)}/{len(rows)} runs")
    if args.family == "saddle":
        for split in ("tune", "held-out"):
            part = [r for r in rows if r.get("split") == split]
            if part:
                print(f"{split}: {sum(r['pass'] for r in part)}/{len(part)}")
    elif not args.gru:   # there the seeds are fit_kef's; which network is held out is said above
        held = [r for r in rows if r["seed"] != 0]
        print(f"held-out systems (seeds other than 0): {sum(r['pass'] for r in held)}/{len(held)}")


if __name__ == "__main__":
    main()
