"""Benchmark: the 64-unit GRU's field, written as gru_vector_field computes it against the
arithmetic it replaced (a zero input multiplied in, the biases added apart, the mix written out).

    .venv/bin/python benchmarks/gru_field.py [--rounds 2]

Prints the largest difference between the two on the scoring clouds, then, alternating the two
so the machine's drift hits them alike, sampling_region's standard fit on the book's GRU with
each: its seconds and the seconds spent in the field. Run it alone.
"""
import argparse
import time

import torch

import seplib as sl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = sl.load_flipflop_gru(name="flipflop_gru_64d")
    card = sl.book_card("flipflop_gru_64d")
    speed, dt = card["field"]["speed"], card["field"]["dt"]
    new = sl.gru_vector_field(model, speed=speed, dt=dt)
    r = model.rnn

    def old(h):
        u = h.new_zeros(*h.shape[:-1], 1)
        gi = u @ r.weight_ih_l0.T + r.bias_ih_l0
        gh = h @ r.weight_hh_l0.T + r.bias_hh_l0
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        reset, update = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        candidate = torch.tanh(i_n + reset * h_n)
        return speed * ((1 - update) * candidate + update * h - h) / dt

    a, b = torch.tensor(card["attractors"])
    region = sl.sampling_region(new, a, b)
    with torch.no_grad():
        x = sl.segment_clouds(a, b, 3000)
        print(f"largest |new - old| on the clouds: {(new(x) - old(x)).abs().max().item():.2e}")
    for _ in range(args.rounds):
        for name, field in (("before", old), ("now", new)):
            spent = [0.0]

            def timed(z, field=field):
                t = time.perf_counter()
                out = field(z)
                spent[0] += time.perf_counter() - t
                return out

            t = time.perf_counter()
            sl.fit_kef(timed, a, b, progress=False, device="cpu", recipe=sl.Recipe(region))
            print(f"{name:6s} fit {time.perf_counter() - t:5.1f} s, in the field {spent[0]:.2f} s", flush=True)


if __name__ == "__main__":
    main()
