"""The bookkeeping of ``fit_kef``: its checks of the arguments, each epoch's batches, the stop
rule, the running average of the weights, and the warnings after training.

The math (network, objectives, loss, pairs) and the training loop are in ``kef.py``, which
passes in the settings that shape training (``SAMPLE_BLOCK``, ``FIELD_CHUNK``,
``STOP_CHECK_EVERY``, ``STOP_PAIR_DISAGREEMENT``, ``AVERAGE_DECAY``), so that they are read and
changed in one place.
"""
import contextlib
import warnings

import torch

from ._guards import _short, as_field, check_count, check_positive, finite_or_raise, finite_real
from .flow import final_state, jacobian
from .sampling import MultiscaleGaussian


# Arguments --------------------------------------------------------------------------------

def _number_or(value, words, ok):
    """``value`` if it is one of ``words`` (strings or None), a float if it is a finite real
    number for which ``ok`` holds (a 0-d tensor or a numpy scalar included, a bool not), else
    None."""
    if value is None or isinstance(value, str):
        return value if value in words else None
    number = finite_real(value)
    return number if number is not None and ok(number) else None


def check_eigenvalue(eigenvalue):
    """``eigenvalue`` as a float, or "auto", or a ValueError that says what it may be."""
    checked = _number_or(eigenvalue, ("auto",), lambda v: v > 0)
    if checked is None:
        raise ValueError(f"eigenvalue must be 'auto' or a finite number > 0, got {eigenvalue!r}: "
                         "a positive eigenvalue makes psi grow away from the separatrix")
    return checked


def check_training(epochs, batch_size, lr, tol, pair_weight, flow_time, balance_weight, anchor_weight):
    """``(flow_time, tol)`` with their numbers as floats, or a ValueError that names the
    setting and what it may be (``Training``'s checks)."""
    check_count(epochs, "epochs")
    check_count(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2: the loss divides each scale's residual by the same "
                         "residual with psi taken at shuffled samples, and one sample shuffles onto itself")
    checked = _number_or(flow_time, ("auto", None), lambda v: v > 0)
    if checked is None and flow_time is not None:
        raise ValueError(f"flow_time must be 'auto', None or a finite time > 0, got {flow_time!r}")
    flow_time = checked
    check_positive(lr, "lr")
    checked = _number_or(tol, (None,), lambda v: 0 <= v < 1)
    if checked is None and tol is not None:
        raise ValueError(f"tol must be None (run every epoch) or a fraction in [0, 1), got {tol!r}")
    tol = checked
    for name, value in (("balance_weight", balance_weight), ("pair_weight", pair_weight)):
        check_positive(value, name, zero=True)
    if anchor_weight is not None:
        check_positive(anchor_weight, "anchor_weight", zero=True)
    return flow_time, tol


def check_field_at(field, points, where):
    """One call of the field (a ``Field``) at ``points``: a value of the wrong shape or type, or
    NaN there, is refused before training starts; ``where`` names the points in the fix."""
    with torch.no_grad():
        out = field(points)
    finite_or_raise(out, "the field's value", "training did not start", f"check f {where}", points=points)


def check_field(field, sampler, device):
    """The field wrapped by ``as_field``, after one call at a few samples (``check_field_at``)."""
    field = as_field(field, sampler.dim)
    probe = sampler.sample(4, torch.Generator().manual_seed(0), device=device).reshape(-1, sampler.dim)
    check_field_at(field, probe, "on the sampled region (the recipe's Sampling: centre, cov, scales), or "
                   "clip the field")
    return field


def check_field_at_ends(field, a, b):
    """The field at a, b and their midpoint (``check_field_at``), before anything integrates it."""
    check_field_at(field, torch.stack((a, b, (a + b) / 2)), "at and between the attractors")


def check_model(net, dim, device):
    with torch.no_grad():
        try:
            out = net(torch.zeros(3, dim, device=device))
        except RuntimeError as err:   # a layer of the wrong size, usually
            raise ValueError(f"the model failed on input of shape (3, {dim}) ({err}): psi must map "
                             f"[N, {dim}] to [N, 1]; check its first layer's input size") from err
    if out.shape not in ((3,), (3, 1)):
        raise ValueError(f"the model returned shape {tuple(out.shape)} for input of shape (3, {dim}): "
                         "psi must map [N, d] to [N, 1] (or [N])")


# Training ---------------------------------------------------------------------------------

class Batches:
    """Each epoch's samples, f at them, the pairs' ends and a shuffle, drawn ``block`` epochs at
    a time: the field is called on a block's samples in chunks of ``chunk`` rows, not once per
    epoch."""

    def __init__(self, field, sampler, starts, pairs, batch_size, epochs, seed, device, block, chunk,
                 near=None, labelled=None):
        self.field, self.sampler, self.starts, self.pairs, self.near = field, sampler, starts, pairs, near
        self.labelled, self.block, self.chunk = labelled, block, chunk
        self.batch, self.epochs, self.device = batch_size, epochs, device
        self.gen = torch.Generator().manual_seed(seed)
        self.n = sampler.groups * batch_size   # rows from the samples; the pairs' ends follow

    def __call__(self, epoch):
        """(x, f(x) at the samples, perm, t, y): x holds the samples, then the pairs' starts and
        ends, then, with ``near`` (from ``near_attractors``), the points near each attractor,
        then, with ``labelled`` (from ``zero_set_labels``), states of known basin y."""
        if epoch % self.block == 0:
            self._draw(epoch, min(self.block, self.epochs - epoch))
        row = epoch % self.block
        return (self.xs[row], self.fxs[row], self.perms[row], None if self.ts is None else self.ts[row],
                None if self.ys is None else self.ys[row])

    def _draw(self, epoch, k):
        dim, b = self.sampler.dim, self.batch
        xs = self.sampler.sample(k * b, self.gen, device=self.device)
        with torch.no_grad():
            fxs = torch.cat([self.field(x) for x in xs.reshape(-1, dim).split(self.chunk)]).view(xs.shape)
        finite_or_raise(fxs, "the field's value", f"training stopped at epoch {epoch} (of the samples of "
                        f"epochs {epoch}-{epoch + k - 1})", "check f on the sampled region (the recipe's "
                        "Sampling), or clip the field", points=xs.reshape(-1, dim))
        # [n_scales, k * b, d] -> [k, n_scales * b, d]: one row block per epoch
        xs, fxs = (a.reshape(-1, k, b, dim).transpose(0, 1).reshape(k, self.n, dim) for a in (xs, fxs))
        self.ts = None
        if self.pairs is not None:   # both ends of a pair go through the samples' pass
            which, ends, times = self.pairs
            picks = torch.randint(len(which), (k, b), generator=self.gen).to(self.device)
            xs = torch.cat((xs, self.starts[which[picks]], ends[picks]), dim=1)
            self.ts = times[picks]
        self.perms = torch.rand(k, b, generator=self.gen).argsort(dim=1).to(self.device)
        if self.near is not None:
            around = self.near(k * b, self.gen, self.device)   # [2, k * b, d]
            xs = torch.cat((xs, around.reshape(2, k, b, dim).transpose(0, 1).reshape(k, 2 * b, dim)), dim=1)
        self.ys = None
        if self.labelled is not None:
            states, y = self.labelled
            picks = torch.randint(len(y), (k, b), generator=self.gen).to(self.device)
            xs, self.ys = torch.cat((xs, states[picks]), dim=1), y[picks]
        self.xs, self.fxs = xs, fxs


def disagreement(start_positive, net, end):
    """The fraction of pairs on which psi's sign at the end differs from the start's
    (``start_positive``: psi > 0 there, one per pair)."""
    end_positive = torch.cat([(net(chunk) > 0).flatten() for chunk in end.split(8192)])
    return (start_positive != end_positive).float().mean().item()


class StopRule:
    """Has the zero set settled? Every ``every`` epochs, from the second check on: psi changed
    sign at fewer than a fraction ``tol`` of the probes since the last check, takes both signs
    there, and its sign differs at the two ends of at most a fraction ``max_disagreement`` of the
    pairs (a pair that disagrees has an end in the wrong basin: that sees far samples stuck in
    the wrong basin, which change no sign). ``tol=None``: never settled, training runs on."""

    def __init__(self, probes, pairs, tol, every, max_disagreement):
        self.probes, self.pairs, self.tol, self.signs = probes, pairs, tol, None
        self.every, self.max_disagreement = every, max_disagreement
        self.changed = None   # the fraction of probes whose sign changed at the last check

    def due(self, epoch):
        return self.tol is not None and (epoch + 1) % self.every == 0

    @torch.no_grad()
    def settled(self, net):
        now = (net(self.probes) > 0).flatten()
        before, self.signs = self.signs, now
        self.changed = None if before is None else (now != before).float().mean().item()
        return (self.changed is not None and self.changed <= self.tol and 0 < now.sum() < len(now)
                and (self.pairs is None or self.disagreement(net, now) <= self.max_disagreement))

    def disagreement(self, net, positive=None):
        """The fraction of pairs whose two ends psi puts on opposite sides."""
        if positive is None:
            positive = (net(self.probes) > 0).flatten()
        return disagreement(positive[self.pairs[0]], net, self.pairs[1])

    def warn_unsettled(self, net, epochs):
        """After a training that ran all its epochs without the rule being met: say what it saw."""
        if self.tol is None or self.changed is None:
            return
        seen = [f"at the last check psi's sign had changed at {self.changed:.2%} of the {len(self.probes)} "
                f"probe samples since the check before (tol {self.tol:.2%})"]
        if self.pairs is not None:
            with torch.no_grad():
                disagreement = self.disagreement(net)
            seen.append(f"its sign differs at the two ends of {disagreement:.2%} of the trajectory "
                        f"pairs (settled: at most {self.max_disagreement:.1%}; a pair that disagrees has an "
                        "end in the wrong basin)")
        warnings.warn(f"training ran all {epochs} epochs without its zero set settling: " + "; ".join(seen)
                      + ". psi may put some states in the wrong basin: check it with seplib.validate_kef, "
                      "train longer (epochs=), or try the other objective (rhs=)", RuntimeWarning, stacklevel=4)


class Average:
    """The running average of the weights (Polyak), whose memory grows to 1 / (1 - decay)
    epochs: the last steps' noise moves psi's sign where psi is tiny, on the far arms."""

    def __init__(self, flat, decay):
        self.flat, self.value, self.decay = flat, None, decay

    def update(self, step):
        """After Adam's step number ``step`` (from 1): the first sets the average."""
        if self.value is None:
            self.value = self.flat.clone()
        self.value.lerp_(self.flat, 1 - min(self.decay, (1 + step) / (10 + step)))

    @contextlib.contextmanager
    def swapped_in(self):
        """The network holds the averaged weights inside the block, its own after it."""
        held = self.flat.clone()
        self.flat.copy_(self.value)
        try:
            yield
        finally:
            self.flat.copy_(held)


# Arguments that name attractors, and what training found ----------------------------------

def near_attractors(attractors, sampler, device):
    """None, or ``near(n, generator, device) -> [2, n, d]``: Gaussians of the sampler's smallest
    scale around each of the two attractors (``[2, d]``, finite and distinct: fit_kef's a and b,
    or the ends of a saddle's unstable manifold)."""
    if attractors is None:
        return None
    points = torch.as_tensor(attractors, dtype=torch.float64).cpu()
    smallest = [sampler.scales.min().item()]
    around = [MultiscaleGaussian(sampler.dim, smallest, p, sampler.cov) for p in points]
    return lambda n, gen, dev: torch.stack([g.sample(n, gen, device=dev)[0] for g in around])


def warn_if_one_signed(net, probes):
    """Warn, and return True, if psi has one sign at every probe."""
    with torch.no_grad():
        positive = (net(probes) > 0).float().mean().item()
    if positive in (0.0, 1.0):
        warnings.warn(f"psi is {'positive' if positive else 'negative'} at all {len(probes)} probe samples: it "
                      "found no separatrix where it sampled. Check that the samples (the recipe's Sampling: centre, cov, "
                      "scales) cover both basins, or train longer or with a larger Training(balance_weight=)", RuntimeWarning, stacklevel=4)
        return True
    return False


def warn_if_ends_not_split(net, field, saddle, sampler, T=60.0, n=256):
    """Warn if psi does not give opposite signs around the two ends of the saddle's unstable
    manifold (the attractors on either side of its separatrix).

    The equation has other solutions with the same lambda: with g an eigenfunction of a stable
    direction (eigenvalue -k) and phi one of eigenvalue lambda + k, g phi is one, and so is
    psi + c g phi; their zero sets can run through an attractor. The stop rule cannot see it
    (such a psi keeps its sign along every trajectory); the two attractors can."""
    J = jacobian(field, saddle[None])[0].double()
    values, vectors = torch.linalg.eig(J)   # J is finite: find_saddles checked it there
    v = vectors[:, values.real.argmax()].real.to(saddle.dtype)
    step = 1e-2 * (sampler.scales.min() * sampler.cov.trace() / sampler.dim).sqrt().item()
    ends = final_state(field, torch.stack((saddle + step * v, saddle - step * v)), T)
    if not torch.isfinite(ends).all():
        return   # the unstable manifold leaves the floats: no attractors to compare
    warn_if_not_split(net, ends, sampler, f"the two attractors that the saddle at {_short(saddle)} leads to", n)


def warn_if_not_split(net, ends, sampler, what, n=256, stacklevel=5):
    """Warn if psi does not give opposite signs around the two points ``ends`` (``[2, d]``): on
    samples of the sampler's smallest scale around each, at most 10% and at least 90% positive."""
    p = next(net.parameters())
    near = near_attractors(ends, sampler, p.device)   # the anchor's clouds, around the ends
    with torch.no_grad():
        x = near(n, torch.Generator().manual_seed(0), p.device).to(p.dtype)
        positive = (net(x.reshape(-1, sampler.dim)).reshape(2, n) > 0).float().mean(dim=1).tolist()
    if min(positive) <= 0.1 and max(positive) >= 0.9:
        return
    at = " and ".join(f"{_short(e)} ({q:.0%} positive)" for e, q in zip(ends, positive))
    warnings.warn(f"psi does not tell apart {what}: "
                  f"around {at}, where it should have one sign around each and opposite signs. "
                  "Its zero set runs near or through an attractor: psi may be another solution of the "
                  "same equation, not this saddle's separatrix. Check it with seplib.validate_kef; try "
                  "another seed or the other objective (rhs=), or set Training(anchor_weight=1.0) for the anchor",
                  RuntimeWarning, stacklevel=stacklevel)
