"""The basin map of many-memory systems against simulation (RESULTS.md, section 8).

    python benchmarks/basin_map.py                 # every system, the default recipe
    python benchmarks/basin_map.py --split held-out --epochs 1500
    python benchmarks/basin_map.py --only flipflop3_gru_32d

For each system: the memories found (against the truth: the exact attractors of the analytic
systems, the 2^k read-out patterns of a k-bit network), the edges and KEFs, the time, the map's
agreement with simulation on clouds around the segment of every edge (the worst edge) and on a
broad cloud over all memories, and flips to a chosen memory: from 10 states near memory 0 to a
neighbour and to the farthest memory, psi's push refined by simulation (lands in the target?)
against brute force's best over 64 random directions and the line.

The split is fixed here, before any tuning: the held-out half is a tanh RNN trained with
another seed and task settings, and the analytic systems at d = 16 and 64 with another seed.
"""
import argparse
import time
import warnings

import torch

import seplib as sl
from seplib.basins import broad_cloud, edge_clouds

TUNE = ["flipflop3_gru_32d", "flipflop2_gru_16d", "flipflop3_gru_64d", "multistable-8", "wells5-8"]
HELD_OUT = ["flipflop3_rnn_32d", "multistable-16", "multistable-64", "wells3-16"]


def system(name):
    """(field, dim, true memories or None, bits or None, relative_tol)."""
    if name.startswith("flipflop"):
        card = sl.book_card(name)
        model = sl.load_flipflop_gru(name=name)
        field = sl.gru_vector_field(model, speed=card["field"]["speed"], dt=card["field"]["dt"])
        return field, card["n_hidden"], None, card["n_in"], model
    kind, dim = name.split("-")
    seed = 0 if name in TUNE else 1
    if kind == "multistable":
        s = sl.multistable_nd(int(dim), bits=3, seed=seed)
    else:
        s = sl.wells_nd(int(dim), wells=int(kind[5:]), seed=seed)
    return s, s.dim, torch.tensor(s.attractors, dtype=torch.float32), None, None


def memories_ok(found, truth, bits, model):
    if truth is not None:
        return len(found) == len(truth) and torch.cdist(found, truth).min(dim=1).values.max().item() < 0.05
    with torch.no_grad():
        patterns = {tuple(p) for p in torch.sign(model.linear(found)).int().tolist()}
    return len(found) == 2**bits == len(patterns)


def flips_to(bm, field, i, j, n=10, seed=0):
    """From n states near memory i into memory j's basin: (landed, n, psi's mean |delta|, brute's mean)."""
    gen = torch.Generator().manual_seed(seed)
    A = bm.attractors
    spread = 0.05 * (A[j] - A[i]).norm() / A.shape[1] ** 0.5
    landed, ours, brute = 0, [], []
    for _ in range(n):
        x0 = A[i] + spread * torch.randn(A.shape[1], generator=gen)
        delta = sl.smallest_flip(bm, x0, target=j)
        refined, _ = sl.refine_flip(field, x0, delta, A, target=j, relative_tol=0.5)
        if refined is not None and sl.flip_verdict(field, x0, refined, A, target=j, relative_tol=0.5) == "flips":
            landed += 1
        best, _ = sl.brute_force_flip(field, x0, A, n_directions=64, target=j, relative_tol=0.5)
        ours.append(float("inf") if refined is None else refined.norm().item())
        brute.append(float("inf") if best is None else best.norm().item())
    no_longer = sum(o <= 1.001 * b for o, b in zip(ours, brute))
    return landed, n, sum(ours) / n, sum(brute) / n, no_longer


def run(name, recipe, share=True):
    field, dim, truth, bits, model = system(name)
    t0 = time.perf_counter()
    # a network's states span about sqrt(units): its memories are found at that scale (chapter 8)
    memories = None if bits is None else sl.find_memories(field, dim, spread=dim**0.5, merge=0.1 * dim**0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bm = sl.basin_map(field, dim, attractors=memories, progress=False, recipe=recipe, share=share)
    seconds = time.perf_counter() - t0   # find_memories included
    per_kef = [k.fit_seconds_ for k in bm.kefs]
    found = memories_ok(bm.attractors, truth, bits, model)
    exact = None
    if truth is not None:   # the system's own order of its attractors, mapped to the map's
        order = torch.cdist(truth, bm.attractors).argmin(dim=1)
        exact = lambda x: order[field.basin(x)]
    x, which = edge_clouds(bm, n=500)
    rep = sl.validate_basin_map(bm, field, x, labels=None if exact is None else exact(x))
    worst = min(((bm(x[which == e]) == rep.labels[which == e])[rep.labels[which == e] >= 0].float().mean().item())
                for e in range(len(bm.edges.pairs)))
    xb = broad_cloud(bm.attractors, 3000)
    broad = sl.validate_basin_map(bm, field, xb, labels=None if exact is None else exact(xb))
    i = 0
    near = next(j for a, j in bm.edges.pairs if a == i)
    far = (bm.attractors - bm.attractors[i]).norm(dim=-1).argmax().item()
    flip_rows = [(i, j, *flips_to(bm, field, i, j)) for j in dict.fromkeys((near, far))]
    print(f"{name}: d = {dim}, {len(bm.attractors)} memories ({'all, none spurious' if found else 'WRONG'}), "
          f"{len(bm.edges.pairs)} edges, {len(bm.kefs)} KEFs; map {seconds:.0f} s (KEFs "
          f"{', '.join(f'{s:.0f}' for s in per_kef)} s); agreement on edge clouds {rep.agreement:.4f} "
          f"(worst edge {worst:.4f}, {rep.unplaced} unplaced), broad cloud {broad.agreement:.4f} "
          f"({broad.unplaced} unplaced)", flush=True)
    for i, j, landed, n, ours, brute, no_longer in flip_rows:
        print(f"    flips {i} -> {j}: {landed}/{n} land in {j}; refined |delta| {ours:.3f} on average, brute force "
              f"{brute:.3f}; no longer than brute force in {no_longer}/{n}", flush=True)
    for w in caught:
        print(f"    warning: {str(w.message)[:160]}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("tune", "held-out", "all"), default="all")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--epochs", type=int, help="the recipe's epochs (and a quarter of them refining)")
    ap.add_argument("--no-share", action="store_true", help="one KEF per edge (basin_map(share=False))")
    args = ap.parse_args()
    recipe = None
    if args.epochs:
        recipe = sl.Recipe(training=sl.Training(epochs=args.epochs),
                           refinement=sl.Refinement(epochs=max(1, args.epochs // 4)))
    names = args.only or {"tune": TUNE, "held-out": HELD_OUT, "all": TUNE + HELD_OUT}[args.split]
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, recipe: "
          f"{'default' if recipe is None else f'{args.epochs} epochs + {args.epochs // 4} refining'}"
          f"{', one KEF per edge' if args.no_share else ''}", flush=True)
    for name in names:
        run(name, recipe, share=not args.no_share)


if __name__ == "__main__":
    main()
