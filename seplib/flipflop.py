"""Train the book's flip-flop networks and write each one's checkpoint and JSON card.

    python -m seplib.flipflop --hidden 2 --seed 0 --out rnn_params/flipflop_gru_2d/
    python -m seplib.flipflop --hidden 64 --seed 0 --out rnn_params/flipflop_gru_64d/
    python -m seplib.flipflop --bits 3 --hidden 32 --seed 0 --steps 3000 --out rnn_params/flipflop3_gru_32d/

Deterministic for a seed on CPU. The card records the task, the training, the error on fresh
trials, and the memories and saddles of the field f(h) = speed * (G(0, h) - h) / dt: with one
bit the two attractors and the saddle between them; with k bits the 2^k memories and the saddles
between neighbouring memories (``seplib.basins.find_memories``, ``find_edges``).
"""
import argparse
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .basins import find_edges, find_memories
from .flow import find_attractors, find_saddle, separatrix_point
from .rnn import FlipFlopRNN, flipflop_error, flipflop_trials, gru_vector_field

TASK = {"n_steps": 100, "pulse_prob": 0.05}


def train_flipflop(n_hidden=2, seed=0, steps=1500, batch=64, lr=1e-2, cell="gru", progress=True, task=None,
                   bits=1):
    """Train a FlipFlopRNN with Adam on fresh ``bits``-bit flip-flop trials each step (MSE on the
    outputs). ``task`` overrides the trials' ``n_steps`` and ``pulse_prob`` (default ``TASK``)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = FlipFlopRNN(bits, n_hidden, bits, cell)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
    bar = tqdm(range(steps), desc="flip-flop", disable=not progress, mininterval=0.5)
    for step in bar:
        u, target = flipflop_trials(batch, generator=gen, bits=bits, **(TASK | (task or {})))
        out, _ = model(u)
        loss = ((out - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(mse=f"{loss.item():.4f}")
    return model.eval().requires_grad_(False)


def describe(model, speed, dt):
    """Attractors, separatrix point and saddle (with its eigenvalues) of the network's field; for
    k bits, its memories, the edges between neighbours and their saddles."""
    field = gru_vector_field(model, speed=speed, dt=dt)
    n = model.rnn.hidden_size
    # Starts up to norm sqrt(n) (states in +-1). In many units a memory is a slow manifold whose
    # ends lie a few tenths apart: merged within 0.1 sqrt(n), far below the distance between memories.
    merge = 0.1 * n**0.5
    if model.rnn.input_size > 1:   # k bits: the 2^k memories and the saddles between neighbours
        memories = find_memories(field, n, spread=n**0.5, merge=merge)
        edges = find_edges(field, memories)
        return {"attractors": memories.tolist(), "attractor_merge_radius": merge,
                "edges": [list(e) for e in edges.pairs],
                "saddles": edges.saddles.tolist(), "saddle_rates": edges.rates.tolist()}
    attractors = find_attractors(field, n, spread=n**0.5, merge=merge)
    card = {"attractors": attractors.tolist(), "attractor_merge_radius": merge}
    if len(attractors) == 2:
        point = separatrix_point(field, attractors[0], attractors[1])
        saddle, eig = find_saddle(field, point, attractors[0], attractors[1])
        card.update(separatrix_point=point.tolist(), saddle=saddle.tolist(),
                    saddle_eigenvalues=[[z.real, z.imag] for z in eig.tolist()])
    return card


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", type=int, default=1, help="memory bits: the network holds 2^bits states")
    ap.add_argument("--cell", choices=("gru", "rnn"), default="gru", help="gru, or rnn (tanh)")
    ap.add_argument("--pulse-prob", type=float, default=TASK["pulse_prob"])
    ap.add_argument("--n-steps", type=int, default=TASK["n_steps"], help="time steps per trial")
    ap.add_argument("--hidden", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--speed", type=float, default=6.0, help="speed factor of the book's field")
    ap.add_argument("--dt", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=Path("rnn_params/flipflop_gru_2d"))
    args = ap.parse_args(argv)

    torch.use_deterministic_algorithms(True)
    task = {"n_steps": args.n_steps, "pulse_prob": args.pulse_prob}
    model = train_flipflop(args.hidden, args.seed, args.steps, cell=args.cell, task=task, bits=args.bits)
    error = flipflop_error(model, **task)
    card = {
        "task": {"name": f"{args.bits}-bit flip-flop", **task, "first_step_pulse": True,
                 "target": "sign of the most recent pulse" + (" on each channel" if args.bits > 1 else "")},
        "training": {"seed": args.seed, "steps": args.steps, "batch": 64, "lr": 1e-2,
                     "optimizer": "Adam, cosine decay to lr/20, grad-norm clip 1", "loss": "MSE"},
        "n_in": args.bits, "n_hidden": args.hidden, "n_out": args.bits, "cell": args.cell,
        "error_fresh_trials": error, "error_threshold": 0.02,
        "error_definition": "fraction of time steps where sign(output) != target, 500 fresh trials",
        "torch_version": torch.__version__,
        "field": {"speed": args.speed, "dt": args.dt, "formula": "speed * (G(0, h) - h) / dt"},
        **describe(model, args.speed, args.dt),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "model.pt")
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
