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


def smallest_flip(kef, x0, mask=None, starts=16, steps=100, damping=0.5, tol=1e-5, seed=0):
    """The smallest-norm delta with psi(x0 + delta) = 0: the nearest point of psi's zero set.

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


def _labels(field, x, attractors, T, relative_tol=None):
    labels, _ = settle(field, x, attractors, T, relative_tol=relative_tol)
    return labels


def _in_a_basin(own):
    """x0's label, or ValueError if x0 settled nowhere."""
    if own < 0:
        raise ValueError("x0 itself reaches no attractor within T: give a state inside a basin, or raise T")
    return own


def flip_verdict(field, x0, delta, attractors, margin=0.02, T=60.0, relative_tol=None):
    """How ``delta`` does, checked by simulation: ``"flips"`` when x0 + (1 + margin) delta ends
    at the other attractor and x0 + (1 - margin) delta at x0's own (it reaches just across the
    separatrix); ``"short"`` when x0 + (1 + margin) delta stays in x0's basin; ``"past"`` when
    x0 + (1 - margin) delta has already left it (a shorter push along delta flips too);
    ``"unsettled"`` when x0 + (1 + margin) delta reaches no attractor within T. ``relative_tol``:
    see ``settle`` (memories on slow manifolds)."""
    field = as_field(field)
    x0, _, attractors = _state_and_attractors(x0, attractors, None)
    delta = _check_delta(delta, x0, nonzero=False)
    check_fraction(margin, "margin", False, True, " (a fraction of |delta|)")
    own, short, past = _labels(field, torch.stack((x0, x0 + (1 - margin) * delta, x0 + (1 + margin) * delta)),
                               attractors, T, relative_tol).tolist()
    _in_a_basin(own)
    if past == own:
        return "short"
    if short != own:
        return "past"
    return "flips" if past >= 0 else "unsettled"


def flips(field, x0, delta, attractors, margin=0.02, T=60.0, relative_tol=None):
    """Does ``delta`` flip x0's basin, just across the separatrix? ``flip_verdict(...) ==
    "flips"``: checked by simulation, x0 + (1 + margin) delta ends at the other attractor and
    x0 + (1 - margin) delta at x0's own."""
    return flip_verdict(field, x0, delta, attractors, margin, T, relative_tol) == "flips"


def refine_flip(field, x0, delta, attractors, reach=2.0, T=60.0, n_iter=12, relative_tol=None):
    """psi's direction, simulation's length: bisection on simulated trajectories along ``delta``'s
    direction, out to ``reach`` times |delta|, for where the flow really crosses into the other
    basin. psi is only as accurate as its training: in many dimensions its zero set can lie a
    few per cent short of or beyond the separatrix (``flip_verdict`` says "short" or "past"),
    and the direction is still a good one.

    Returns ``(delta, n_trajectories)``: the push along delta's direction that just crosses
    (to within ``reach * 2^-n_iter`` of |delta|), and the trajectories simulated (``n_iter + 2``);
    delta is None if x0 + reach * delta does not reach the other basin either.
    ``relative_tol``: see ``settle`` (memories on slow manifolds).
    """
    field = as_field(field)
    x0, _, attractors = _state_and_attractors(x0, attractors, None)
    delta = _check_delta(delta, x0, nonzero=True)
    check_count(n_iter, "n_iter")
    if not check_positive(reach, "reach") > 1:
        raise ValueError(f"reach must be > 1 (how far past |delta| to look), got {reach!r}")
    own, far = _labels(field, torch.stack((x0, x0 + reach * delta)), attractors, T, relative_tol).tolist()
    own = _in_a_basin(own)
    if far < 0 or far == own:
        return None, 2
    s = bisect(field, lambda s: x0 + reach * s[:, None] * delta, attractors[own], attractors[far], 1, T,
               n_iter, relative_tol=relative_tol)
    return reach * s[0] * delta, n_iter + 2


def brute_force_flip(field, x0, attractors, n_directions=256, mask=None, reach=None, T=60.0, n_iter=20,
                     seed=0, relative_tol=None):
    """The smallest flip that simulation alone finds: bisection on simulated trajectories along
    ``n_directions`` random directions (masked) and along the straight line to the other
    attractor, each out to ``reach`` (default: twice the distance between the attractors).

    Returns ``(delta, n_trajectories)``: the smallest flipping delta found (None if no direction
    flips within reach) and how many trajectories it simulated. ``n_directions=0`` searches the
    line alone (no mask, two attractors). ``relative_tol``: see ``settle``.
    """
    field = as_field(field)
    x0, m, attractors = _state_and_attractors(x0, attractors, mask)
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
