"""Many dimensions: fit_kef with sampling_region on bistable_nd, against the exact separatrix.

    .venv/bin/python benchmarks/high_dim.py --dims 8,32,128 --seeds 0,1,2

For each dimension and system seed: the attractors from find_attractors (its defaults), psi
trained with ``sampling_region(field, a, b, rhs)``, and then
- basin agreement on 3000 points of ``segment_clouds`` (norms 0.1-1 x |b - a|), labelled by
  the sign of the exact ``separatrix_value``;
- the crossing error along 200 random curves between the attractors (bisection on the ODE),
  median and p90 as fractions of |b - a|, and R^2 of the crossing positions;
- seconds per KEF, and the seconds it takes to label the same 3000 points by simulation
  (``basin_labels``), which is what the exact labels spare us.
The recipe was chosen on system seed 0; seeds 1 and 2 are held out.
Targets: agreement >= 0.99, median <= 0.005, p90 <= 0.015, R^2 >= 0.998, <= 60 s per KEF.
"""
import argparse
import time

import torch

import seplib as sl

TARGETS = {"agree": 0.99, "median": 0.005, "p90": 0.015, "r2": 0.998, "seconds": 60.0}


def passes(row):
    return (row["agree"] >= TARGETS["agree"] and row["median"] <= TARGETS["median"]
            and row["p90"] <= TARGETS["p90"] and row["r2"] >= TARGETS["r2"]
            and row["seconds"] <= TARGETS["seconds"])


def run(dim, seed, objectives, label_by_simulation=True):
    system = sl.bistable_nd(dim, seed=seed)
    a, b = sl.find_attractors(system, dim)
    dist = (b - a).norm().item()
    x = sl.segment_clouds(a, b, 3000)
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
        print(f"  d={dim} seed {seed}: labelling 3000 points by simulation took {sim_seconds:.1f} s, "
              f"{kept.float().mean().item():.4f} labelled, agreeing with the exact sign on {same:.4f}",
              flush=True)
    s_true = None
    rows = []
    for rhs in objectives:
        t = time.perf_counter()
        kef = sl.fit_kef(system, dim, progress=False, device="cpu", seed=0,
                         **sl.sampling_region(system, a, b, rhs=rhs))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="8,32,128")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--rhs", default="squashed,standard")
    ap.add_argument("--no-simulation", action="store_true", help="skip timing basin_labels")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for dim in [int(v) for v in args.dims.split(",")]:
        for seed in [int(v) for v in args.seeds.split(",")]:
            rows += run(dim, seed, args.rhs.split(","), not args.no_simulation)
    print("\n| d | objective | seeds | seconds | agreement | median | p90 | R^2 | every target |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dim in sorted({r["dim"] for r in rows}):
        for rhs in args.rhs.split(","):
            rs = [r for r in rows if r["dim"] == dim and r["rhs"] == rhs]
            print(f"| {dim} | {rhs} | {','.join(str(r['seed']) for r in rs)} | "
                  f"{min(r['seconds'] for r in rs):.1f}-{max(r['seconds'] for r in rs):.1f} | "
                  f"{min(r['agree'] for r in rs):.4f} | {max(r['median'] for r in rs):.4f} | "
                  f"{max(r['p90'] for r in rs):.4f} | {min(r['r2'] for r in rs):.4f} | "
                  f"{sum(r['pass'] for r in rs)}/{len(rs)} |")
    held = [r for r in rows if r["seed"] != 0]
    print(f"\nevery target: {sum(r['pass'] for r in rows)}/{len(rows)} runs; held-out seeds "
          f"(not 0): {sum(r['pass'] for r in held)}/{len(held)}")


if __name__ == "__main__":
    main()
