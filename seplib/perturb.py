"""Perturbation design from psi: the smallest push that moves a state into the other basin.

Once psi is known the separatrix is a level set we can compute with: the smallest perturbation
delta that flips x0's basin is the nearest point of psi = 0, found by a constrained solver in a
fraction of a second. By simulation alone one can only try directions one by one
(``brute_force_flip``); ``flips`` checks any answer by simulation, and ``refine_flip`` corrects
the length of psi's push along its direction, with a dozen simulated trajectories.
"""
import torch

from ._guards import (as_field, check_count, check_fraction, check_positive, finite_or_raise, psi_of,
                      real_numbers, seeded)
from .flow import _attractors, bisect, settle


def _psi_and_grad(kef, x):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        psi = psi_of(kef, x)
        (grad,) = torch.autograd.grad(psi.sum(), x)
    return psi.detach(), grad


def _state_and_attractors(x0, attractors, mask):
    """``(x0, mask, attractors)`` checked: x0 one finite state, attractors ``[k >= 2, d]`` in its
    dtype."""
    x0, m = _check_state(x0, None, mask)
    attractors = _attractors(attractors, x0)
    if len(attractors) < 2:
        raise ValueError(f"attractors holds {len(attractors)} point: a flip needs another basin to reach, "
                         "give at least two attractors, [k, d] (e.g. torch.stack((a, b)))")
    return x0, m, attractors


def _check_state(x0, dim, mask):
    x0 = real_numbers(x0, "x0", "one state (a 1-D tensor)", torch.float32)
    if x0.dim() != 1 or (dim is not None and len(x0) != dim):
        raise ValueError(f"x0 must be one state, shape ({dim or 'd'},), got shape {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 has NaN or inf entries: give a finite state")
    if mask is None:
        return x0, torch.ones_like(x0)
    mask = torch.as_tensor(mask)
    if mask.shape != x0.shape or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(x0.shape)}, got {mask.dtype} "
                         f"of shape {tuple(mask.shape)}")
    if not mask.any():
        raise ValueError("mask has no True entry: no coordinate may move, so no perturbation exists; "
                         "set True where delta may be nonzero")
    return x0, mask.to(x0.dtype)


def _check_delta(delta, x0, nonzero):
    """delta as float32, or ValueError unless it is finite (and nonzero), shaped like x0."""
    delta = real_numbers(delta, "delta", "a perturbation (a 1-D tensor)", torch.float32)
    if delta.shape != x0.shape:
        problem = f"shape {tuple(delta.shape)}"
    elif not torch.isfinite(delta).all():
        problem = "NaN or inf entries"
    elif nonzero and not delta.abs().sum() > 0:
        problem = "all zeros"
    else:
        return delta
    raise ValueError(f"delta must be a finite{' nonzero' if nonzero else ''} push of shape {tuple(x0.shape)}, "
                     f"e.g. from sl.smallest_flip; got {problem}")


def smallest_flip(kef, x0, mask=None, starts=16, steps=100, damping=0.5, tol=1e-5, seed=0, target=None):
    """The smallest-norm delta with psi(x0 + delta) = 0: the nearest point of psi's zero set.

    ``target`` (an index): the smallest push into the basin of that memory. With a ``BasinMap``
    (``sl.basin_map``) it is the nearest point of the region the map gives memory ``target``
    (where its margin, ``bm.margins``, reaches 0), so it need not be a neighbour of x0's basin;
    with a KEF from ``fit_kef`` it is 0 (a) or 1 (b), and must be the side psi does not put x0 on.
    A BasinMap needs a target.

    Sequential linearisation: at each step psi is linearised at x0 + delta and delta jumps to the
    nearest point of that linear zero set, (g . delta - psi) g / |g|^2 with g = grad psi there
    (masked), damped by ``damping``; a fixed point is a state on psi = 0 where delta is parallel
    to the gradient, the condition for the nearest point. It runs from ``starts`` starting deltas
    at once: 0 (the linearisation at x0), random directions at about the linear distance
    |psi| / |grad psi| (half to twice it, and no farther than ``kef.mean_``, the centre of a
    fitted KEF's samples) and, where there is one, that centre; it returns the smallest delta
    that reached psi = 0 (|psi| below ``tol`` times psi's scale at x0), so a far local solution
    does not win. Starts that have not converged after ``steps`` steps get up to two more
    rounds with smaller damping.

    ``mask`` (bool, length d) limits delta to the coordinates where it is True. Raises ValueError
    when no start reaches psi = 0 (psi has no zero near x0 in the allowed directions).
    """
    check_count(starts, "starts")
    check_count(steps, "steps")
    check_positive(tol, "tol")
    check_fraction(damping, "damping", True, False, " (the fraction of each jump taken)")
    dim = getattr(kef, "dim", None)
    x0, m = _check_state(x0, dim, mask)
    if target is not None or hasattr(kef, "margins"):
        kef = _TargetSide(kef, x0, target)
        if kef.many:
            return _nearest_in_region(kef, x0, m, starts, steps, damping, tol, seed)
    psi0, g0 = _psi_and_grad(kef, x0[None])
    finite_or_raise(torch.cat((psi0.reshape(-1), g0.reshape(-1))), "psi or its gradient at x0",
                    "there is no zero set to step towards", "check the KEF (a diverged fit?) and x0",
                    points=x0[None])
    g0 = g0[0] * m
    scale = max(abs(psi0.item()), 1e-12)
    reach = (scale / g0.norm().clamp_min(1e-12)).item()   # the linear distance to psi = 0
    # A trained KEF's zero set runs through its samples' centre (the saddle): no farther than
    # that, and a start there. Where psi saturates, its gradient vanishes and the linear
    # distance can be hundreds of times too long.
    centre = getattr(kef, "mean_", None)
    toward = None if centre is None else (centre.to(x0) - x0) * m
    if toward is not None and toward.norm() == 0:   # x0 is the centre: the zero start covers it
        toward = None
    if toward is not None:
        reach = min(reach, toward.norm().item())
    gen = seeded(seed)
    u = torch.randn(starts - 1, len(x0), generator=gen) * m
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    radius = reach * 2 ** (2 * torch.rand(starts - 1, 1, generator=gen) - 1)
    delta = torch.cat((torch.zeros(1, len(x0)), radius * u) + (() if toward is None else (toward[None],)))
    # Where psi saturates (the squashed objective) the damped jumps can cycle instead of
    # converging; each retry runs the starts again with 0.4 x the damping (those at psi = 0 stay).
    for rate in (damping, 0.4 * damping, 0.16 * damping):
        for _ in range(steps):
            psi, g = _psi_and_grad(kef, x0 + delta)
            g = g * m
            norm2 = (g * g).sum(-1).clamp_min(1e-24)
            target = ((g * delta).sum(-1) - psi)[:, None] * g / norm2[:, None]
            delta = delta + rate * (target - delta)
        psi, _ = _psi_and_grad(kef, x0 + delta)
        ok = psi.abs() <= tol * scale + 1e-7
        if ok.all():
            break
    if not ok.any():
        raise ValueError(f"psi has no zero near x0 in the allowed directions: after 3 x {steps} steps from "
                         f"{starts} starts |psi| is at least {psi.abs().min():.3g} (psi(x0) = {psi0.item():.3g}); "
                         "check that x0 is in a basin psi separates, widen the mask, or raise steps")
    norms = torch.where(ok, delta.norm(dim=-1), torch.full_like(psi, float("inf")))
    return delta[norms.argmin()].detach()


def _min_norm(g, G, delta):
    """The smallest delta' with g + G (delta' - delta) >= 0 (a few linearised constraints, rows
    of G): every subset of them held with equality, the smallest that meets them all."""
    n = len(g)
    rhs = G @ delta - g                       # the constraints read G delta' >= rhs
    best = torch.zeros_like(delta) if (rhs <= 0).all() else None
    for mask in range(1, 2**n):
        rows = [i for i in range(n) if mask >> i & 1]
        Gs = G[rows]
        try:
            mu = torch.linalg.solve(Gs @ Gs.T + 1e-12 * torch.eye(len(rows), dtype=G.dtype), rhs[rows])
        except RuntimeError:   # parallel constraints
            continue
        cand = Gs.T @ mu
        if (G @ cand >= rhs - 1e-6 * rhs.abs().max().clamp_min(1e-12)).all() and (
                best is None or cand.norm() < best.norm()):
            best = cand
    return best


def _nearest_in_region(side, x0, m, starts, steps, damping, tol, seed):
    """smallest_flip into a BasinMap's region for one memory: the nearest x0 + delta where every
    one of the memory's edges puts it on the memory's side. Sequential linearisation of all of
    them at once (a small quadratic problem each step), from the zero start, the line to the
    memory and random directions (``starts`` in all, at most 4: each step solves the problem for
    every subset of the constraints); the smallest delta that meets every one wins."""
    def sides_and_grads(x):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            g = side.constraints(x)
            G = torch.stack([torch.autograd.grad(g[i], x, retain_graph=True)[0] for i in range(len(g))])
        return g.detach().double(), (G * m).double()

    gen = seeded(seed)
    toward = (side.mean_ - x0) * m
    u = torch.randn(max(0, min(starts, 4) - 2), len(x0), generator=gen) * m
    u = 0.5 * toward.norm() * u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    best = None
    for delta in torch.cat((torch.zeros(1, len(x0)), toward[None], u)).double():
        for rate in (damping, 0.4 * damping):
            d = delta.clone()
            for _ in range(steps):
                g, G = sides_and_grads((x0 + d).float())
                target = _min_norm(g, G, d)
                if target is None:
                    break
                if (target - d).norm() <= 1e-6 * target.norm().clamp_min(1e-12):
                    break   # converged
                d = d + rate * (target - d)
            g, _ = sides_and_grads((x0 + d).float())
            if g.min() >= -tol * side.scale:
                break
        if g.min() >= -tol * side.scale and (best is None or d.norm() < best.norm()):
            best = d
    if best is None:
        raise ValueError(f"no push from x0 reaches memory {side.target}'s region of the map in the allowed "
                         f"directions (after {steps} steps from {starts} starts): widen the mask, or raise steps")
    return best.float()


class _TargetSide:
    """A function > 0 exactly where ``kef`` puts a state in memory ``target``'s basin, used as
    psi by smallest_flip: the map's margin for it, or a KEF's psi signed by its side at that
    memory. ``mean_``: the target memory (no push need reach past it)."""

    def __init__(self, kef, x0, target):
        many = hasattr(kef, "margins")
        ends = kef.attractors if many else getattr(kef, "attractors_", None)
        if target is None:
            raise ValueError("a BasinMap needs target= (the index of the memory to push x0 into, "
                             f"0 to {len(ends) - 1})")
        if ends is None:
            raise ValueError("target= needs to know the memories: give a KEF from sl.fit_kef (it keeps its a and b "
                             "as kef.attractors_) or a BasinMap from sl.basin_map")
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(ends):
            raise ValueError(f"target must be the index of a memory, an integer from 0 to {len(ends) - 1}, got "
                             f"{target!r}")
        self.kef, self.target, self.many, self.dim = kef, target, many, len(x0)
        self.mean_ = ends[target].to(x0)
        self.sign = 1.0 if many else (1.0 if psi_of(kef, self.mean_).item() > 0 else -1.0)
        own = self(x0[None]).item()
        self.scale = max(abs(own), 1e-12)
        if own > 0:
            where = (f"the map puts x0 in memory {target}'s basin already" if many else
                     f"psi puts x0 on memory {target}'s side already (psi(x0) = {psi_of(kef, x0).item():.3g})")
            raise ValueError(f"{where}: choose another target")

    def __call__(self, x):
        if self.many:
            return self.kef.margins(x)[..., self.target]
        return self.sign * psi_of(self.kef, x)

    def constraints(self, x):
        """The map's signed, scaled KEFs of the target's edges at one state x: ``[n]``, all > 0
        inside the target's region."""
        return self.kef.sides(x[None], self.target)[0]


def _labels(field, x, attractors, T, relative_tol=None):
    labels, _ = settle(field, x, attractors, T, relative_tol=relative_tol)
    return labels


def _in_a_basin(own):
    """x0's label, or ValueError if x0 settled nowhere."""
    if own < 0:
        raise ValueError("x0 itself reaches no attractor within T: give a state inside a basin, or raise T")
    return own


def flip_verdict(field, x0, delta, attractors, margin=0.02, T=60.0, relative_tol=None, target=None):
    """How ``delta`` does, checked by simulation: ``"flips"`` when x0 + (1 + margin) delta ends
    at the other attractor and x0 + (1 - margin) delta at x0's own (it reaches just across the
    separatrix); ``"short"`` when x0 + (1 + margin) delta stays in x0's basin; ``"past"`` when
    x0 + (1 - margin) delta has already left it (a shorter push along delta flips too);
    ``"unsettled"`` when x0 + (1 + margin) delta reaches no attractor within T. ``relative_tol``:
    see ``settle`` (memories on slow manifolds).

    ``target`` (an index into attractors): "flips" means x0 + (1 + margin) delta reaches that
    memory and x0 + (1 - margin) delta does not; ``"elsewhere"`` when x0 + (1 + margin) delta
    reaches another memory, neither x0's nor the target."""
    field = as_field(field)
    x0, _, attractors = _state_and_attractors(x0, attractors, None)
    delta = _check_delta(delta, x0, nonzero=False)
    check_fraction(margin, "margin", False, True, " (a fraction of |delta|)")
    own, short, past = _labels(field, torch.stack((x0, x0 + (1 - margin) * delta, x0 + (1 + margin) * delta)),
                               attractors, T, relative_tol).tolist()
    _in_a_basin(own)
    target = _check_target(target, own, len(attractors))
    if past == own:
        return "short"
    if short != own and (target is None or short == target):
        return "past"
    if past < 0:
        return "unsettled"
    return "flips" if target is None or (past == target and short != target) else "elsewhere"


def _check_target(target, own, k):
    """target as an int (or None), or ValueError: out of range, or x0's own basin."""
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < k:
        raise ValueError(f"target must be the index of a memory, an integer from 0 to {k - 1}, got {target!r}")
    if target == own:
        raise ValueError(f"x0 is already in the basin of memory {target} (by simulation): choose another target")
    return target


def flips(field, x0, delta, attractors, margin=0.02, T=60.0, relative_tol=None, target=None):
    """Does ``delta`` flip x0's basin, just across the separatrix? ``flip_verdict(...) ==
    "flips"``: checked by simulation, x0 + (1 + margin) delta ends at the other attractor (or
    at ``target``) and x0 + (1 - margin) delta at x0's own (or not at ``target``)."""
    return flip_verdict(field, x0, delta, attractors, margin, T, relative_tol, target) == "flips"


def _first_entry(field, x0, u, attractors, target, T, n_iter, relative_tol, n_scan=8):
    """Along each ray x0 + s u[n] (s in [0, 1]), the first s where the flow reaches memory
    ``target``: a scan at ``n_scan`` points, then bisection on "reaches target" between the last
    point that does not and the first that does. Returns ``(s [n], trajectories used)``, s NaN
    on rays that never reach it."""
    grid = torch.linspace(0, 1, n_scan + 1)[1:]
    points = x0 + grid[None, :, None] * u[:, None]
    hit = _labels(field, points.reshape(-1, len(x0)), attractors, T, relative_tol).reshape(len(u), n_scan) == target
    used = hit.numel()
    some = hit.any(dim=1)
    first = hit.float().argmax(dim=1)
    hi = grid[first]
    lo = torch.where(first > 0, grid[(first - 1).clamp(min=0)], torch.zeros(()))
    rays = some.nonzero().flatten()
    for _ in range(n_iter):
        if not len(rays):
            break
        mid = (lo[rays] + hi[rays]) / 2
        there = _labels(field, x0 + mid[:, None] * u[rays], attractors, T, relative_tol) == target
        hi[rays] = torch.where(there, mid, hi[rays])
        lo[rays] = torch.where(there, lo[rays], mid)
        used += len(rays)
    return torch.where(some, hi, torch.full_like(hi, float("nan"))), used


def refine_flip(field, x0, delta, attractors, reach=2.0, T=60.0, n_iter=12, relative_tol=None, target=None):
    """psi's direction, simulation's length: bisection on simulated trajectories along ``delta``'s
    direction, out to ``reach`` times |delta|, for where the flow really crosses into the other
    basin. psi is only as accurate as its training: in many dimensions its zero set can lie a
    few per cent short of or beyond the separatrix (``flip_verdict`` says "short" or "past"),
    and the direction is still a good one.

    Returns ``(delta, n_trajectories)``: the push along delta's direction that just crosses
    (to within ``reach * 2^-n_iter`` of |delta|), and the trajectories simulated (``n_iter + 2``);
    delta is None if x0 + reach * delta does not reach the other basin either.
    ``relative_tol``: see ``settle`` (memories on slow manifolds). ``target``: the push along
    delta's direction that first reaches that memory's basin (a scan of 8 points out to reach
    |delta|, then bisection): on the way it may cross a third basin.
    """
    field = as_field(field)
    x0, _, attractors = _state_and_attractors(x0, attractors, None)
    delta = _check_delta(delta, x0, nonzero=True)
    check_count(n_iter, "n_iter")
    if not check_positive(reach, "reach") > 1:
        raise ValueError(f"reach must be > 1 (how far past |delta| to look), got {reach!r}")
    own, far = _labels(field, torch.stack((x0, x0 + reach * delta)), attractors, T, relative_tol).tolist()
    own = _in_a_basin(own)
    if _check_target(target, own, len(attractors)) is not None:
        s, used = _first_entry(field, x0, reach * delta[None], attractors, target, T, n_iter, relative_tol)
        return (None if torch.isnan(s[0]) else reach * s[0] * delta), used + 2
    if far < 0 or far == own:
        return None, 2
    s = bisect(field, lambda s: x0 + reach * s[:, None] * delta, attractors[own], attractors[far], 1, T,
               n_iter, relative_tol=relative_tol)
    return reach * s[0] * delta, n_iter + 2


def brute_force_flip(field, x0, attractors, n_directions=256, mask=None, reach=None, T=60.0, n_iter=20,
                     seed=0, relative_tol=None, target=None):
    """The smallest flip that simulation alone finds: bisection on simulated trajectories along
    ``n_directions`` random directions (masked) and along the straight line to the other
    attractor, each out to ``reach`` (default: twice the distance between the attractors).

    Returns ``(delta, n_trajectories)``: the smallest flipping delta found (None if no direction
    flips within reach) and how many trajectories it simulated. ``n_directions=0`` searches the
    line alone (no mask, two attractors). ``relative_tol``: see ``settle``.

    ``target``: the smallest push into that memory's basin: along each direction (and the line
    to the target, without a mask) the first point that reaches it, by a scan of 8 points out
    to ``reach`` (default: twice the distance from x0 to the target) and bisection.
    """
    field = as_field(field)
    x0, m, attractors = _state_and_attractors(x0, attractors, mask)
    if target is not None:
        return _brute_force_to(field, x0, m, attractors, n_directions, mask is None, reach, T, n_iter, seed,
                               relative_tol, target)
    line = mask is None and len(attractors) == 2   # the straight line to the other attractor is searched too
    check_count(n_directions, "n_directions", minimum=0)
    check_count(n_iter, "n_iter")
    if n_directions == 0 and not line:
        raise ValueError("n_directions=0 searches the line to the other attractor alone, and there is no line "
                         "here (a mask, or not two attractors): give n_directions >= 1")
    own = _in_a_basin(_labels(field, x0[None], attractors, T, relative_tol).item())
    reach = 2 * (attractors[1] - attractors[0]).norm().item() if reach is None else check_positive(reach, "reach")
    gen = seeded(seed)
    u = torch.randn(n_directions, len(x0), generator=gen) * m
    if line:
        u = torch.cat(((attractors[1 - own] - x0)[None], u))
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ends = _labels(field, x0 + reach * u, attractors, T, relative_tol)   # which directions flip within reach
    used = len(u) + 1
    flipped = (ends >= 0) & (ends != own)
    u = u[flipped]
    if len(u) == 0:
        return None, used
    a, b = attractors[own], attractors[ends[flipped][0]]
    s = bisect(field, lambda s: x0 + reach * s[:, None] * u, a, b, len(u), T, n_iter, relative_tol=relative_tol)
    used += n_iter * len(u)
    delta = reach * s[:, None] * u
    return delta[delta.norm(dim=-1).argmin()], used


def _brute_force_to(field, x0, m, attractors, n_directions, line, reach, T, n_iter, seed, relative_tol, target):
    own = _in_a_basin(_labels(field, x0[None], attractors, T, relative_tol).item())
    target = _check_target(target, own, len(attractors))
    check_count(n_directions, "n_directions", minimum=0)
    check_count(n_iter, "n_iter")
    if n_directions == 0 and not line:
        raise ValueError("n_directions=0 searches the line to the target alone, and there is none with a mask: "
                         "give n_directions >= 1")
    reach = 2 * (attractors[target] - x0).norm().item() if reach is None else check_positive(reach, "reach")
    gen = seeded(seed)
    u = torch.randn(n_directions, len(x0), generator=gen) * m
    if line:
        u = torch.cat(((attractors[target] - x0)[None], u))
    u = reach * u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    s, used = _first_entry(field, x0, u, attractors, target, T, n_iter, relative_tol)
    if torch.isnan(s).all():
        return None, used + 1
    norms = torch.where(torch.isnan(s), torch.full_like(s, float("inf")), s * u.norm(dim=-1))
    return (s[norms.argmin()] * u[norms.argmin()]), used + 1
