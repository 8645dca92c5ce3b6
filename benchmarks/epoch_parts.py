"""Where a training epoch goes: fit_kef with sampling_region's recipe, its parts timed inside the
real training loop (each wrapped in a timer from outside; nothing in seplib changes).

    .venv/bin/python benchmarks/epoch_parts.py                 # the book's 64-unit GRU, standard
    .venv/bin/python benchmarks/epoch_parts.py --dim 128       # bistable_nd(128) instead
    .venv/bin/python benchmarks/epoch_parts.py --rhs squashed --epochs 3000

Trains ``--epochs`` epochs of the recipe (without ``refine``, so that every epoch is alike) and
prints milliseconds per epoch for: the step (``kef._train_step``) and, inside it, the network's
forward and backward (``kef.directional_derivative`` and the backward through it) and the loss
(``_fast.loss_and_grad``); the batches (``_training.Batches``) and, inside their draws, the
normals (``MultiscaleGaussian.sample``) and the field; Adam (``_fast.FlatAdam.step``); the
weight average. Run it alone: another torch process on the machine slows both.
"""
import argparse
import time
from collections import defaultdict

import torch

import seplib as sl
from seplib import _fast, _training, kef
from seplib.sampling import MultiscaleGaussian

SECONDS = defaultdict(float)


def timed(name, fn):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - start
    return wrapper


def system(dim):
    """(field, a, b, saddle or "auto", what) for the book's GRU (dim None) or bistable_nd(dim)."""
    if dim is None:
        model = sl.load_flipflop_gru(name="flipflop_gru_64d")
        card = sl.book_card("flipflop_gru_64d")
        field = sl.gru_vector_field(model, speed=card["field"]["speed"], dt=card["field"]["dt"])
        a, b = torch.tensor(card["attractors"])
        return field, a, b, torch.tensor(card["saddle"]), "the book's 64-unit GRU"
    field = sl.bistable_nd(dim)
    a, b = torch.tensor(field.attractors, dtype=torch.float32)
    return field, a, b, "auto", f"bistable_nd({dim})"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dim", type=int, default=None, help="bistable_nd(dim) in place of the GRU")
    parser.add_argument("--rhs", default="standard", choices=("standard", "squashed"))
    parser.add_argument("--epochs", type=int, default=1500)
    args = parser.parse_args()

    field, a, b, saddle, what = system(args.dim)
    region = sl.sampling_region(field, a, b, saddle=saddle)
    training = sl.Training.for_rhs(args.rhs).replace(epochs=args.epochs)
    # the field and the normals are counted only inside a draw (not in the set-up's calls)
    drawing = {"on": False}

    def while_drawing(name, fn):
        counted = timed(name, fn)
        return lambda *a, **k: (counted if drawing["on"] else fn)(*a, **k)

    def draw(fn):
        def wrapper(self, *a, **k):
            drawing["on"] = True
            try:
                return fn(self, *a, **k)
            finally:
                drawing["on"] = False
        return wrapper

    kef._train_step = timed("step", kef._train_step)
    kef.directional_derivative = timed("step: forward", kef.directional_derivative)
    _fast.loss_and_grad = timed("step: the loss and its gradient", _fast.loss_and_grad)
    _fast.TanhMLPTangent.backward = staticmethod(timed("step: backward", _fast.TanhMLPTangent.backward))
    _training.Batches.__call__ = timed("batches", _training.Batches.__call__)
    _training.Batches._draw = draw(_training.Batches._draw)
    MultiscaleGaussian.sample = while_drawing("batches: the normals", MultiscaleGaussian.sample)
    _fast.FlatAdam.step = timed("adam", _fast.FlatAdam.step)
    _training.Average.update = timed("weight average", _training.Average.update)

    start = time.perf_counter()
    psi = sl.fit_kef(while_drawing("batches: the field", field), a, b, rhs=args.rhs, progress=False,
                     recipe=sl.Recipe(region, training, refinement=None))
    total = time.perf_counter() - start
    print(f"{what}, {args.rhs}, {args.epochs} epochs of {training.batch_size} per scale (no refine): "
          f"fit {total:.1f} s, lambda {psi.eigenvalue:.3f}, torch {torch.__version__}, "
          f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads\n")
    print("| part | ms per epoch |\n|---|---|")
    for name in ("step", "step: forward", "step: backward", "step: the loss and its gradient", "batches",
                 "batches: the normals", "batches: the field", "adam", "weight average"):
        print(f"| {name} | {SECONDS[name] / args.epochs * 1e3:.3f} |")
    rest = total - sum(SECONDS[k] for k in ("step", "batches", "adam", "weight average"))
    print(f"| set-up and the rest (the pairs, the checks), in all | {rest * 1e3 / args.epochs:.3f} |")


if __name__ == "__main__":
    main()
