"""Ground truth by integration: attractors, basins, bisection to the separatrix, the saddle."""
import warnings

import torch
from torchdiffeq import odeint

from ._guards import (_short, as_ends, as_field, as_point, as_states, check_count, check_fraction, check_positive,
                      finite_or_raise, seeded)


def integrate(field, x0, t, method="dopri5", rtol=1e-6, atol=1e-7):
    """Integrate dx/dt = field(x) from ``x0`` (``[..., d]``) at the times ``t``: ``[len(t), ..., d]``.

    Where the step size underflows (torchdiffeq asserts that it does not; the field is NaN, inf
    or too stiff along a trajectory) it raises a FloatingPointError, not a bare AssertionError."""
    x0 = as_states(x0, "x0")
    check_positive(rtol, "rtol")
    check_positive(atol, "atol")
    try:
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"t must be a 1-D tensor of times, got {type(t).__name__}") from err
    steps = t.diff() if t.dim() == 1 else t
    if t.dim() != 1 or len(t) < 2 or not torch.isfinite(t).all() or not ((steps > 0).all() or (steps < 0).all()):
        raise ValueError(f"t must be at least two finite times, strictly increasing or decreasing (e.g. "
                         f"torch.linspace(0, T, 50), or [0, T] for the end state only), got {_short(t)}")
    _finite_states(x0, "x0", "integrate")
    field = as_field(field)
    if x0.numel() == 0:   # no states: torchdiffeq's step size would underflow on an empty norm
        return x0.new_zeros((len(t), *x0.shape))
    with torch.no_grad():
        try:
            return odeint(lambda _t, x: field(x), x0, t, method=method, rtol=rtol, atol=atol)
        except AssertionError as err:
            if "underflow in dt" not in str(err):
                raise
            raise FloatingPointError(f"integrating the field failed ({err}): the field is NaN, inf or too "
                                     "stiff along a trajectory") from err


def _check_time(T):
    check_positive(T, "T", "a finite time")


def _finite_states(x, name, where):
    bad = ~torch.isfinite(x).reshape(-1, x.shape[-1]).all(dim=-1) if x.dim() else ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} has NaN or inf entries at {int(bad.sum())} of {bad.numel()} states, so {where} "
                         "cannot follow them: give finite states")


def _attractors(attractors, x):
    """``attractors`` as a finite ``[k, d]`` tensor in x's dtype and on its device."""
    attractors = torch.as_tensor(attractors, dtype=x.dtype, device=x.device)
    if attractors.dim() != 2 or attractors.shape[-1] != x.shape[-1] or len(attractors) == 0:
        raise ValueError(f"attractors must be a [k, {x.shape[-1]}] tensor (one point per row, e.g. "
                         f"torch.stack((a, b))), got shape {tuple(attractors.shape)}")
    if not torch.isfinite(attractors).all():
        raise ValueError("attractors has NaN or inf entries: give finite points")
    same = (attractors[:, None] == attractors[None]).all(dim=-1).triu(diagonal=1).nonzero()
    if len(same):
        i, j = same[0].tolist()
        raise ValueError(f"attractors has the same point in rows {i} and {j} ({_short(attractors[i])}): "
                         "give distinct attractors, one per row")
    _finite_states(x, "x", "the flow")
    return attractors


def final_state(field, x0, T):
    """Where each point of ``x0`` is after time ``T``."""
    return integrate(field, x0, [0.0, float(T)])[-1]


def find_attractors(field, dim, n_starts=256, T=60.0, spread=2.0, seed=0, tol=1e-2, merge=None,
                    dtype=torch.float32):
    """Attractors of ``field``: integrate ``n_starts`` random starts for time ``T``, keep the end
    points where the flow has stopped, merge those closer than ``merge`` (default ``10 tol``).

    A trained network's memories can be slow manifolds rather than points: the ends stop
    anywhere along them, a few tenths apart. A ``merge`` radius well below the distance between
    the memories keeps one end per memory.

    The starts point in random directions with norms log-uniform from ``spread / 100`` to
    ``spread``, in any dimension. The small ones matter in many dimensions: a random direction is
    nearly orthogonal to the one that separates the basins, so starts of norm ``spread`` can all
    lie on one side of a curved separatrix, while starts near the saddle fall on both.

    Returns ``Tensor[k, dim]`` sorted by coordinates, so the order is the same on every run.
    With one attractor (k = 1) it also warns: ``a, b = find_attractors(...)`` would fail on it.
    """
    check_count(dim, "dim")
    check_count(n_starts, "n_starts")
    _check_time(T)
    check_positive(spread, "spread", "a finite distance")
    check_positive(tol, "tol", "a finite speed")
    field = as_field(field, dim)
    merge = 10 * tol if merge is None else check_positive(merge, "merge", "a finite distance")
    gen = seeded(seed)
    direction = torch.randn(n_starts, dim, generator=gen, dtype=dtype)
    norm = spread * 100 ** -torch.rand(n_starts, 1, generator=gen, dtype=dtype)
    x0 = norm * direction / direction.norm(dim=-1, keepdim=True)
    ends = final_state(field, x0, T)
    with torch.no_grad():
        speed = field(ends).norm(dim=-1)
    ends = ends[torch.isfinite(speed) & (speed < tol)]
    if len(ends) == 0:
        raise RuntimeError(f"no start settled within T={T}: raise T or check that the field has attractors")
    centres, counts = merge_ends(ends, merge)
    # A saddle can catch a start that lies on its stable manifold; an attractor catches many.
    least = max(2, n_starts // 100)
    centres = [c for c, n in zip(centres, counts) if n >= least]
    if not centres:
        raise RuntimeError(f"no point where the flow stopped was reached by {least} or more of the {n_starts} "
                           f"starts ({len(ends)} settled), so none counts as an attractor (a saddle can catch a "
                           "start or two): pass more n_starts")
    if len(centres) == 1:
        warnings.warn(f"find_attractors found one attractor, at {_short(centres[0])}, from {n_starts} starts: "
                      "no separatrix without a second. If the field has another, no start settled in its "
                      "basin: pass more n_starts, another spread (starts of norm spread / 100 to spread) or "
                      "a longer T", RuntimeWarning, stacklevel=2)
    centres = sorted(centres, key=lambda c: tuple(round(v, 4) for v in c.tolist()))
    return torch.stack(centres)


def settle(field, x, attractors, T=60.0, tol=5e-2, chunks=12, relative_tol=None):
    """Integrate each point of ``x`` (``[N, d]``) until it comes within ``tol`` of an attractor,
    for at most time ``T``. Returns ``(labels [N], end states [N, d])``: the index of the
    attractor reached, or -1 for a point that has not settled by ``T``.

    ``relative_tol`` (for memories on slow manifolds, where a trajectory stops somewhere along
    the manifold and never within ``tol`` of the point that stands for it): a point also counts
    as settled once it is within ``relative_tol`` times its distance to every other attractor.
    So it also labels a state that still lingers near a saddle, before the state leaves, where
    the saddle is closer to one attractor than ``relative_tol`` times its distance to the other.
    On x' = x - x^3 + 0.3, y' = -y the saddle is 0.45 from one attractor and 1.46 from the
    other, and 0.5 moved the crossing that bisection finds between them by 0.003 of their
    distance. On our 64-unit GRU the saddle is 3.22 from one memory and 2.80 from the other.

    Time advances in ``chunks`` steps, and only the points still moving are integrated further:
    most points settle early, so the stiff or slow few do not set the pace for all.
    """
    attractors = _attractors(attractors, x)
    _check_time(T)
    check_positive(tol, "tol", "a finite distance")
    if relative_tol is not None:
        check_fraction(relative_tol, "relative_tol", True, True, " (0.5 labels a point once it is twice as far "
                       "from every other attractor as from its own)")
    labels = torch.full(x.shape[:1], -1, dtype=torch.long, device=x.device)
    state = x.clone()
    active = torch.arange(len(x), device=x.device)
    for _ in range(chunks):
        if len(active) == 0:
            break
        state[active] = final_state(field, state[active], T / chunks)
        dist = torch.cdist(state[active], attractors)
        best, index = dist.min(dim=-1)
        done = best < tol
        if relative_tol is not None and len(attractors) > 1:
            second = dist.topk(2, dim=-1, largest=False).values[:, 1]
            done |= best < relative_tol * second
        labels[active[done]] = index[done]
        active = active[~done]
    return labels, state


def basin_labels(field, x, attractors, T=60.0, tol=5e-2, margin=1e-3, relative_tol=None):
    """Index of the attractor that each point of ``x`` (``[..., d]``) reaches within time ``T``.

    A point is labelled -1, not guessed, when its end state is farther than ``tol`` from every
    attractor (it has not converged by ``T``), or when moving it by ``margin`` towards or away
    from another attractor (along the line from the first attractor to each other one) changes
    the attractor it reaches: it lies on the separatrix to within ``margin`` along that line.
    Without that check a grid column that lies exactly on a separatrix (x = 0 on the 2D bistable
    system) gets whichever basin float rounding picks. The check costs 2 (k - 1) more trajectories
    per point for k attractors, in any dimension. ``margin=0`` turns it off. ``relative_tol``:
    see ``settle`` (memories on slow manifolds).
    """
    x = as_states(x, "x")
    d = x.shape[-1]
    points = x.reshape(-1, d)
    attractors = _attractors(attractors, points)
    check_positive(margin, "margin", "a finite distance", zero=True)
    labels, _ = settle(field, points, attractors, T, tol, relative_tol=relative_tol)
    if margin > 0 and len(attractors) > 1:
        lines = attractors[1:] - attractors[0]
        lines = lines / lines.norm(dim=-1, keepdim=True)
        shifts = margin * torch.cat((lines, -lines))
        moved, _ = settle(field, (points[None] + shifts[:, None]).reshape(-1, d), attractors, T, tol,
                          relative_tol=relative_tol)
        same = (moved.reshape(len(shifts), -1) == labels).all(dim=0)
        labels = torch.where(same, labels, torch.full_like(labels, -1))
    return labels.reshape(x.shape[:-1])


def _nearer(field, x, a, b, T, relative_tol=None):
    """``(to_b, end)``: True where the flow from x goes to b rather than a (by the end state's
    distance if it has not settled by T), and the end states."""
    labels, end = settle(field, x, torch.stack((a, b)), T, relative_tol=relative_tol)
    nearer_b = (end - b).norm(dim=-1) < (end - a).norm(dim=-1)
    return torch.where(labels >= 0, labels == 1, nearer_b), end


def bisect(field, curve, a, b, n_curves, T=60.0, n_iter=30, dtype=torch.float32, relative_tol=None):
    """Bisection for the separatrix crossing along a batch of ``n_curves`` curves.

    ``curve(s)`` maps parameters ``s`` (``Tensor[n_curves]`` in [0, 1]) to points
    ``[n_curves, d]``, with ``curve(0)`` in the basin of attractor ``a`` and ``curve(1)`` in that
    of ``b``. Returns the crossing parameters (``Tensor[n_curves]``), each to within 2^-n_iter.
    ``relative_tol``: see ``settle``; where memories are slow manifolds, it stops each
    trajectory once it is settled rather than at T.
    """
    check_count(n_iter, "n_iter")
    lo = torch.zeros(n_curves, dtype=dtype, device=a.device)
    hi = torch.ones_like(lo)
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        to_b, _ = _nearer(field, curve(mid), a, b, T, relative_tol)
        hi = torch.where(to_b, mid, hi)
        lo = torch.where(to_b, lo, mid)
    return (lo + hi) / 2


def check_crossed(s, n_iter, what):
    """A ValueError if a bisection of ``bisect`` never left an end of its curves (``s`` within
    its resolution of 0 or 1): every point of the curve flowed to the attractor at one end, so a
    and b lie in one basin, and the "crossing" bisection returns is that end."""
    tiny = 4 * max(2.0**-n_iter, torch.finfo(s.dtype).eps)
    at_a, at_b = int((s < tiny).sum()), int((s > 1 - tiny).sum())
    if at_a or at_b:
        raise ValueError(f"{what}: on {at_a + at_b} of {len(s)} curves from a to b every point flows to the "
                         f"attractor at one end ({at_b} to a, {at_a} to b), so there is no separatrix between "
                         "them: a and b lie in one basin. Give two attractors of different basins (on a "
                         "network whose memories are slow manifolds, find_attractors(..., merge=) keeps one "
                         "end per memory)")


def separatrix_point(field, a, b, T=60.0, n_iter=30):
    """A point on the separatrix between attractors ``a`` and ``b``, by bisection along the segment."""
    a, b = as_ends(a, b)
    s = bisect(field, lambda s: a + s[:, None] * (b - a), a, b, 1, T, n_iter, dtype=a.dtype)
    check_crossed(s, n_iter, "separatrix_point")
    return a + s[0] * (b - a)


def jacobian(field, x):
    """The Jacobian df/dx at the points ``x`` (``[..., d]``): ``[..., d, d]``.

    By autograd where the field's value depends on x through torch operations; by central
    differences where autograd cannot see through it (a field computed in numpy, say), with a
    step of eps^(1/3) times each coordinate's size (at least 1): 2d more calls of the field.
    """
    field = as_field(field)
    x = as_states(x, "x")
    d = x.shape[-1]
    rows = x.detach().reshape(-1, d)
    J = _autograd_jacobian(field, rows)
    if J is None:
        J = _central_differences(field, rows)
    return J.reshape(*x.shape, d)


def _autograd_jacobian(field, x):
    """[N, d, d] by autograd, or None if the field's value does not reach x through autograd."""
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        try:
            fx = field(x)
        except RuntimeError as err:   # x.numpy() inside the field refuses a tensor that needs grad
            if "requires grad" in str(err):
                return None
            raise
        if not fx.requires_grad:
            return None
        # the field acts on each point separately, so the gradient of the sum of one output
        # component over the batch is that component's row of every point's Jacobian
        rows = [torch.autograd.grad(fx[:, i].sum(), x, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)[0] for i in range(x.shape[-1])]
    return torch.stack(rows, dim=1).detach()


def _central_differences(field, x):
    """[N, d, d] by central differences, one call of the field on all 2d N shifted points."""
    n, d = x.shape
    h = torch.finfo(x.dtype).eps ** (1 / 3) * x.abs().clamp(min=1.0)         # [N, d]
    shifts = torch.diag_embed(h)                                            # [N, d, d]: h_j e_j
    plus, minus = x[:, None] + shifts, x[:, None] - shifts
    with torch.no_grad():
        f = field(torch.cat((plus, minus)).reshape(-1, d)).reshape(2, n, d, d)
    step = (plus - minus).diagonal(dim1=1, dim2=2)                          # 2h, as rounded
    return ((f[0] - f[1]) / step[..., None]).transpose(1, 2)                # J[i, :, j]


_CHECK_NEAR = "check the field near that point (a square root or log of a negative number, a division by zero?)"
_SADDLE_FIX = _CHECK_NEAR + ", or start find_saddle from another point"


def find_saddle(field, point, a, b, rounds=30, tau=1.0, T=60.0, n_newton=50, tol=1e-5, near=1e-2):
    """The saddle on the separatrix through ``point``, and the eigenvalues of its Jacobian.

    Edge tracking: a point on the separatrix flows towards the saddle, but rounding pushes it off
    into a basin. So we flow for a short time ``tau``, bisect again across the separatrix along
    the line through a and b, and repeat until the flow is slower than ``near``; then Newton's
    method on f(x) = 0 finishes. Returns ``(saddle [d], eigenvalues [d] complex)``.
    """
    field = as_field(field)
    x = as_point(point, "point")
    a, b = as_ends(a, b, x.dtype)
    check_count(rounds, "rounds", minimum=0)
    check_count(n_newton, "n_newton", minimum=0)
    for value, name in ((tau, "tau"), (T, "T"), (tol, "tol"), (near, "near")):
        check_positive(value, name)
    if len(a) != len(x):
        raise ValueError(f"point has dimension {len(x)} but a and b have {len(a)}: give points of one space")
    width = 0.05 * (b - a)
    for _ in range(rounds):
        with torch.no_grad():
            if field(x).norm() < near:
                break
        x = integrate(field, x, [0.0, tau])[-1]
        lo, hi = x - width, x + width
        lo_to_b, hi_to_b = _nearer(field, torch.stack((lo, hi)), a, b, T)[0].tolist()
        if lo_to_b or not hi_to_b:
            break  # the segment no longer straddles the separatrix: the point has settled
        s = bisect(field, lambda s: lo + s[:, None] * (hi - lo), a, b, 1, T, 20, dtype=x.dtype)
        x = lo + s[0] * (hi - lo)
    for _ in range(n_newton):
        fx = field(x)
        if fx.norm() < tol:
            break
        J = jacobian(field, x)
        finite_or_raise(torch.cat((J, fx[:, None]), dim=1), "the field or its Jacobian",
                        "torch.linalg.lstsq (a Newton step in find_saddle) was not called", _SADDLE_FIX,
                        points=x[None])
        x = x - torch.linalg.lstsq(J, fx.unsqueeze(-1)).solution.squeeze(-1)
    if not field(x).norm() < 10 * tol:
        raise RuntimeError(f"no fixed point found near {torch.as_tensor(point).tolist()}: "
                           f"|f| = {field(x).norm():.2e} at {x.tolist()}")
    J = jacobian(field, x)
    finite_or_raise(J, "the field's Jacobian at the saddle",
                    "torch.linalg.eigvals (in find_saddle) was not called", _SADDLE_FIX, points=x[None])
    values = torch.linalg.eigvals(J)
    unstable = int(_unstable(values))
    if unstable != 1:   # Newton's method from off the separatrix ends at an attractor, say
        raise RuntimeError(f"the fixed point reached from {_short(torch.as_tensor(point))} is not a saddle "
                           f"on the separatrix: its Jacobian has {unstable} unstable directions, not one "
                           f"(at {_short(x)}). Start from a point on the separatrix between a and b, e.g. "
                           "sl.separatrix_point(field, a, b)")
    return x.detach(), values


def saddle_normal(field, saddle):
    """The linearisation's separatrix at a saddle with one unstable direction: ``(rate, w)``,
    the unstable eigenvalue's real part and the unit left eigenvector of the Jacobian for it.
    Near the saddle the separatrix is the hyperplane through it normal to w."""
    x = as_point(saddle, "saddle").detach().reshape(1, -1)
    J = jacobian(field, x)[0].double()
    finite_or_raise(J, "the field's Jacobian at the saddle", "torch.linalg.eig (in saddle_normal) was not "
                    "called", _CHECK_NEAR, points=x)
    values, vectors = torch.linalg.eig(J.T)   # the eigenvectors of J^T are J's left eigenvectors
    unstable = int(_unstable(values))
    if unstable != 1:
        raise ValueError(f"saddle={_short(x)} is not a saddle on a separatrix: the Jacobian there has "
                         f"{unstable} unstable directions, not one (largest real part of its eigenvalues "
                         f"{values.real.max().item():.3g}). Give the saddle between two basins "
                         "(sl.find_saddle, or the card's 'saddle')")
    k = values.real.argmax()
    w = vectors[:, k].real
    return values[k].real.item(), (w / w.norm()).to(x.dtype)


class Linearisation:
    """The linearisation's separatrix at a saddle, used like psi: ``lin(x)`` (``[..., d] ->
    [...]``) is (x - saddle) . w, the signed distance from the hyperplane through the saddle
    normal to w, the unit left eigenvector of the Jacobian for its unstable eigenvalue. Its zero
    set is that hyperplane, so whatever takes psi (``basin_agreement``, ``separatrix_error``,
    ``smallest_flip``, ``plots.kef_slice``) takes it too: the baseline psi is measured against.
    ``saddle``, ``normal`` (w) and ``rate`` (the unstable eigenvalue's real part) are kept."""

    def __init__(self, saddle, normal, rate):
        self.saddle, self.normal, self.rate = saddle, normal, rate
        self.dim = len(saddle)

    def __call__(self, x):
        x = as_states(x, "x", self.dim)
        return (x - self.saddle.to(x)) @ self.normal.to(x)

    def __repr__(self):
        return f"Linearisation(saddle={_short(self.saddle)}, rate={self.rate:.4g})"


def linearisation(field, saddle):
    """The linearisation at ``saddle`` (one unstable direction) as a ``Linearisation``: near the
    saddle the separatrix is the hyperplane through it normal to the left unstable eigenvector
    (``saddle_normal``); farther out it bends away, and psi need not."""
    saddle = as_point(saddle, "saddle").detach().reshape(-1)
    rate, w = saddle_normal(field, saddle)
    return Linearisation(saddle.to(w.dtype), w, rate)


def _unstable(values, relative=1e-5):
    """How many eigenvalues (``[..., d]``, complex) have a positive real part, counting one as
    positive only above ``relative`` times the largest modulus: below it a float32 Jacobian
    cannot tell its sign (a degenerate saddle, where f vanishes to higher order)."""
    floor = relative * values.abs().max(dim=-1, keepdim=True).values
    return (values.real > floor).sum(dim=-1)


def find_saddles(field, x, starts=32, steps=40, tol=1e-4):
    """The saddles with one unstable direction that Newton's method on f(x) = 0 reaches from the
    ``starts`` slowest of the points ``x`` (``[N, d]``) whose Jacobian has one eigenvalue of
    positive real part, kept if they lie within the points' extent.

    Where such a saddle exists, the separatrix passes through it: it tells where to sample and
    how fast the flow leaves the separatrix, without knowing the attractors. Returns ``(saddles
    [k, d], rates [k])``, rates the unstable eigenvalue's real part, fastest first; k = 0 if no
    start converged (|f| below ``tol`` times the median speed at the points).
    """
    field = as_field(field)
    check_count(starts, "starts")
    check_count(steps, "steps")
    check_positive(tol, "tol", "a finite fraction")
    x = as_states(x, "x").detach()
    x = x.reshape(-1, x.shape[-1])
    if not len(x):
        raise ValueError("x holds no points: give the states to start Newton's method from, [N, d]")
    with torch.no_grad():
        speed = field(x).norm(dim=-1)
    J = jacobian(field, x)
    finite_or_raise(torch.cat((J, speed[:, None, None].expand(-1, 1, x.shape[-1])), dim=1),
                    "the field or its Jacobian", "torch.linalg.eigvals (in find_saddles) was not called",
                    _CHECK_NEAR + "; in fit_kef, move the samples (the recipe's Sampling: centre, cov, "
                    "scales) or pass its centre and eigenvalue= yourself", points=x)
    centre = x.mean(dim=0)
    extent = (x - centre).norm(dim=-1)
    empty = x.new_zeros(0, x.shape[-1]), x.new_zeros(0)
    # the slowest points first, in blocks, until `starts` have one unstable direction: the
    # eigenvalues of every point cost seconds in 128 dimensions
    chosen = []
    for block in speed.argsort().split(4 * starts):
        one_unstable = _unstable(torch.linalg.eigvals(J[block].double())) == 1
        chosen.append(block[one_unstable])
        if sum(len(c) for c in chosen) >= starts:
            break
    chosen = torch.cat(chosen)[:starts]
    if len(chosen) == 0:
        return empty
    y = x[chosen]
    longest = 0.25 * extent.square().mean().sqrt()   # a step no longer than this stays in the region
    y = newton_steps(field, y, steps, longest)
    if len(y) == 0:
        return empty
    with torch.no_grad():
        fy = field(y)
    done = (fy.norm(dim=-1) <= tol * speed.median()) & ((y - centre).norm(dim=-1) <= extent.max())
    saddles, rates = [], []
    for s in y[done]:
        if any((s - t).norm() <= 1e-2 * longest for t in saddles):
            continue
        values = torch.linalg.eigvals(jacobian(field, s[None])[0].double())
        if _unstable(values) == 1:
            saddles.append(s)
            rates.append(values.real.max().item())
    if not saddles:
        return empty
    order = torch.tensor(rates).argsort(descending=True)
    return torch.stack(saddles)[order], torch.tensor(rates, dtype=x.dtype)[order]


def newton_steps(field, y, steps, longest):
    """``steps`` steps of Newton's method on f = 0 from every row of ``y`` at once (least
    squares, each step at most ``longest`` long). Rows whose field or Jacobian leaves the floats
    are dropped: they have not converged."""
    for _ in range(steps):
        with torch.no_grad():
            fy = field(y)
        Jy = jacobian(field, y)
        ok = torch.isfinite(fy).all(dim=-1) & torch.isfinite(Jy).flatten(1).all(dim=-1)
        y, fy, Jy = y[ok], fy[ok], Jy[ok]
        if len(y) == 0:
            break
        step = torch.linalg.lstsq(Jy.double(), fy.double().unsqueeze(-1)).solution.squeeze(-1)
        step = step * (longest / step.norm(dim=-1, keepdim=True).clamp(min=longest)).double()
        y = y - step.to(y.dtype)
    return y


def merge_ends(ends, merge):
    """The end points ``ends`` grouped within ``merge`` of the first of each group:
    ``(centres, counts)``, lists in the order met."""
    centres, counts = [], []
    for p in ends:
        for i, c in enumerate(centres):
            if (p - c).norm() < merge:
                counts[i] += 1
                break
        else:
            centres.append(p)
            counts.append(1)
    return centres, counts


def expansion_rate(field, x, q=0.99):
    """How fast the flow pulls nearby states apart around the points ``x`` (``[N, d]``): the
    ``q``-quantile over x of the largest real part of the eigenvalues of the Jacobian df/dx.

    Near a saddle, states separate at its unstable rate; where no other place in the sampled
    region separates them faster (the analytic systems in this book), this is the saddle's
    unstable rate mu, found without locating the saddle. On some trained networks another region
    is up to twice as fast: ``find_saddles`` gives the saddle's own rate. The quantile, not the
    maximum, keeps one stray sample from setting it.
    """
    check_fraction(q, "q", False, False, " (a quantile)")
    x = as_states(x, "x").detach()
    x = x.reshape(-1, x.shape[-1])
    if not len(x):
        raise ValueError("x holds no points: give the states around which to measure the rate, [N, d]")
    J = jacobian(field, x)
    finite_or_raise(J, "the field's Jacobian", "torch.linalg.eigvals (in expansion_rate) was not called",
                    _CHECK_NEAR + "; in fit_kef, move the samples (the recipe's Sampling: centre, cov, "
                    "scales) or pass eigenvalue= yourself", points=x)
    growth = torch.linalg.eigvals(J.double()).real.max(dim=-1).values
    return torch.quantile(growth, q).item()
