"""Benchmark: what fit_kef's stop rule sees at each of its checks, run by run.

    .venv/bin/python benchmarks/stop_rule_trace.py --members duffing-0.3,curved-1,duffing_overdamped,duffing

For each named member (the book's systems of kef_training.py, or the validation family's),
both objectives, seeds 0-2, with fit_kef's defaults: the epochs and seconds the fit took, and
at every check (every 500 epochs from epoch 500) the fraction of probes whose sign changed since
the check before and the fraction of trajectory pairs whose ends psi puts on opposite sides. The
rule stops once the first is at most 0.2% and the second at most 0.5%. Training is the same as
without the trace: the trace reads the same averaged weights the rule checks. The seconds leave
out the trace's own pass over the pairs (about 0.1 s per check on Duffing).
"""
import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

import seplib as sl
from seplib import _training

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kef_training  # noqa: E402
import validation_family  # noqa: E402


def traced(checks):
    """StopRule.settled, also recording (changed, pair disagreement, seconds the trace took) at
    every check."""
    settled = _training.StopRule.settled

    def settled_and_traced(rule, net):
        verdict = settled(rule, net)
        t = time.perf_counter()
        disagreement = rule.disagreement(net) if rule.pairs is not None else None
        checks.append((rule.changed, disagreement, time.perf_counter() - t))
        return verdict

    return settled_and_traced


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", default="duffing-0.3,curved-1,duffing_overdamped,duffing")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    torch.set_num_threads(2)
    checks = []
    _training.StopRule.settled = traced(checks)
    print("member              objective seed epochs     s  at each check: signs changed / pairs disagreeing")
    for name in args.members.split(","):
        if name in kef_training.SYSTEMS:
            field, _ = kef_training.system(name)
        else:
            field = validation_family.member(name)[0]
        for rhs in ("standard", "squashed"):
            for seed in (int(s) for s in args.seeds.split(",")):
                checks.clear()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # validation_family.py lists the warnings
                    kef = sl.fit_kef(field, *sl.find_attractors(field, 2), rhs=rhs, seed=seed, device="cpu",
                                     progress=False, recipe=sl.Recipe.low_dim())
                trace = " ".join(("-" if c is None else f"{c:.2%}") + ("" if d is None else f"/{d:.2%}")
                                 for c, d, _ in checks)
                seconds = kef.fit_seconds_ - sum(s for _, _, s in checks)
                print(f"{name:19s} {rhs:9s} {seed:4d} {len(kef.loss_history_):6d} {seconds:5.1f}  {trace}",
                      flush=True)


if __name__ == "__main__":
    main()
