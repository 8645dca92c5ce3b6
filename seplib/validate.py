"""How good is a KEF? Compare its sign and its zero set with the ground truth from ``flow``."""
import torch

from ._guards import (_short, as_ends, as_states, check_count, check_positive, finite_or_raise, psi_of,
                      real_numbers, seeded)
from .flow import _finite_states, basin_labels, bisect, check_crossed
from .sampling import SEGMENT_NORMS, around_segment


def _psi(kef, x):
    with torch.no_grad():
        psi = psi_of(kef, x)
    finite_or_raise(psi.reshape(-1), "psi", "its sign says no basin there", "check the KEF (a diverged fit?) "
                    "and the points", points=x.reshape(-1, x.shape[-1]))
    return psi


def wrong_basin(psi, labels):
    """Which points the sign of ``psi`` (psi's values at them) puts in the wrong basin, with the
    better of the two sign conventions (psi's sign is arbitrary). Unlabelled points (label -1)
    are never wrong."""
    keep = labels >= 0
    wrong = (psi.cpu() > 0) != (labels.cpu() == 1)
    if wrong[keep].float().mean() > 0.5:        # psi's sign convention is the other way round
        wrong = ~wrong
    return wrong & keep.cpu()


def basin_agreement(kef, x, labels):
    """Fraction of the labelled points (label 0 or 1) where sign(psi) matches the basin, with
    the better of the two sign conventions. Unlabelled points (-1) are left out."""
    x = as_states(x, "x")
    try:
        labels = torch.as_tensor(labels)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"labels must be a tensor of basin indices (0, 1, or -1 where unlabelled), "
                         f"got {type(labels).__name__}") from err
    if tuple(labels.shape) != tuple(x.shape[:-1]):
        raise ValueError(f"labels has shape {tuple(labels.shape)} but x has {tuple(x.shape[:-1])} points: "
                         "give one label per point (from basin_labels on the same x)")
    valid = (labels == -1) | (labels == 0) | (labels == 1)
    if not valid.all():
        raise ValueError(f"labels must be 0 or 1 (the two basins psi splits) or -1 (unlabelled), got "
                         f"{_short(labels[~valid].unique())}: label the points with basin_labels and two "
                         "attractors")
    keep = labels >= 0
    if not keep.any():
        raise ValueError("no point is labelled (every label is -1): there is nothing to agree with; "
                         "label the points with basin_labels (relative_tol= for slow memories)")
    return 1.0 - wrong_basin(_psi(kef, x), labels)[keep.cpu()].float().mean().item()


def random_curves(a, b, n, bend=0.5, seed=0):
    """``n`` random smooth curves from ``a`` to ``b``: the segment plus a sine bump of random size
    (up to ``bend`` times the segment length) in a random direction. Returns ``curve(s)`` for
    ``s`` of shape ``[n]``, and the same for a grid ``s`` of shape ``[n, m]``."""
    gen = seeded(seed)
    d = a.shape[-1]
    length = (b - a).norm()
    direction = torch.randn(n, d, generator=gen, dtype=a.dtype)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    size = bend * length * (2 * torch.rand(n, 1, generator=gen, dtype=a.dtype) - 1)
    bump = (size * direction).to(a.device)

    def curve(s):
        s = s.unsqueeze(-1)
        return a + s * (b - a) + torch.sin(torch.pi * s) * (bump if s.dim() == 2 else bump[:, None])

    return curve


def separatrix_error(kef, field, a, b, n_curves=200, bend=0.5, T=60.0, n_iter=20, n_grid=2001, seed=0,
                     s_true=None, relative_tol=None):
    """Distance between the true separatrix crossing and the zero of psi along random curves
    from attractor ``a`` to attractor ``b``.

    The true crossing is found by bisection on the ODE; psi's zero is the sign change of psi on
    a fine grid of the same curve, refined linearly (the one nearest the true crossing if psi
    changes sign more than once; curves where psi keeps one sign count as the whole curve off).
    Returns a dict: ``median``, ``p90`` (state-space distance), ``r2`` of the crossing positions,
    the raw ``true`` and ``learned`` crossing points, and ``s_true``, where the true crossings lie
    along the curves. Pass that ``s_true`` back to measure another KEF of the same field, with
    the same attractors and curve settings, without bisecting the ODE again. ``relative_tol``
    goes to the bisection's ``settle`` (memories on slow manifolds: each trajectory stops once it
    is settled, not at T).
    """
    a, b = as_ends(a, b)
    check_count(n_curves, "n_curves")
    check_count(n_grid, "n_grid", minimum=2)
    curve = random_curves(a, b, n_curves, bend, seed)
    if s_true is None:
        s_true = bisect(field, curve, a, b, n_curves, T, n_iter, dtype=a.dtype, relative_tol=relative_tol)
        check_crossed(s_true, n_iter, "separatrix_error")
    elif s_true.shape != (n_curves,):
        raise ValueError(f"s_true has shape {tuple(s_true.shape)}, expected ({n_curves},): pass the "
                         "'s_true' of an earlier separatrix_error call with the same curve settings")
    s = torch.linspace(0, 1, n_grid, dtype=a.dtype, device=a.device).expand(n_curves, n_grid)
    pts = curve(s)                                        # [n, m, d]
    psi = _psi(kef, pts)                                  # [n, m]
    change = (psi[:, :-1] * psi[:, 1:]) <= 0              # sign changes between grid points
    s0, s1, p0, p1 = s[:, :-1], s[:, 1:], psi[:, :-1], psi[:, 1:]
    s_zero = s0 + (s1 - s0) * p0 / (p0 - p1).where(p0 != p1, torch.ones_like(p0))
    gap = torch.where(change, (s_zero - s_true[:, None]).abs(), torch.full_like(s0, float("inf")))
    best = gap.argmin(dim=1)
    s_learned = s_zero.gather(1, best[:, None]).squeeze(1)
    found = change.any(dim=1)
    s_learned = torch.where(found, s_learned, 1 - (s_true > 0.5).to(a.dtype))  # far end: worst case
    true_pts = curve(s_true)
    learned_pts = curve(s_learned)
    dist = (true_pts - learned_pts).norm(dim=-1)
    # R^2 of the learned crossing positions against the true ones, all coordinates together.
    ss_res = ((learned_pts - true_pts) ** 2).sum()
    ss_tot = ((true_pts - true_pts.mean(dim=0)) ** 2).sum()
    return {
        "median": dist.median().item(),
        "p90": dist.quantile(0.9).item(),
        "r2": (1 - ss_res / ss_tot).item(),
        "true": true_pts,
        "learned": learned_pts,
        "s_true": s_true,
    }


def segment_clouds(a, b, n=3000, lo=SEGMENT_NORMS[0], hi=SEGMENT_NORMS[1], seed=0):
    """``n`` points around the segment from ``a`` to ``b``, in any dimension: a point of the
    segment, uniform, plus a random direction times a norm uniform in [lo, hi] x |b - a|. Where
    basins cannot be drawn, basin agreement on these clouds says how well psi splits the space
    between the attractors."""
    a, b = as_ends(a, b)
    check_count(n, "n")
    if not 0 <= check_positive(lo, "lo", zero=True) <= check_positive(hi, "hi", zero=True):
        raise ValueError(f"lo and hi must satisfy 0 <= lo <= hi (norms as fractions of |b - a|), got {lo}, {hi}")
    return around_segment(a, b, n, lo, hi, seeded(seed))


def grid(lo, hi, n=201, dtype=torch.float32):
    """An ``n x n`` grid over ``[lo[0], hi[0]] x [lo[1], hi[1]]``: ``(X, Y, points [n*n, 2])``."""
    corners = []
    for name, value in (("lo", lo), ("hi", hi)):
        corner = real_numbers(value, name, "a corner (x, y) of two numbers", torch.float64)
        if corner.shape != (2,) or not torch.isfinite(corner).all():
            raise ValueError(f"{name} must be a corner (x, y) of two finite numbers, got {value!r}")
        corners.append(corner)
    if not (corners[0] < corners[1]).all():
        raise ValueError(f"lo must lie below hi in both coordinates, got lo={_short(corners[0])}, "
                         f"hi={_short(corners[1])}")
    check_count(n, "n")
    (x0, y0), (x1, y1) = (c.tolist() for c in corners)
    xs = torch.linspace(x0, x1, n, dtype=dtype)
    ys = torch.linspace(y0, y1, n, dtype=dtype)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return X, Y, torch.stack((X.flatten(), Y.flatten()), dim=-1)


def validate_kef(kef, field, attractors, points, labels=None, T=60.0, **error_kw):
    """Basin agreement on ``points`` and separatrix error between the two ``attractors``.

    ``labels`` are the points' basins (from ``basin_labels``), and ``s_true`` the true crossings
    (the result's ``s_true``): pass them to check several KEFs of one field without integrating
    again.
    """
    attractors = as_states(attractors, "attractors")
    if attractors.dim() != 2 or len(attractors) != 2:
        raise ValueError(f"attractors must be the two attractors, [2, d] (e.g. torch.stack((a, b))), got shape "
                         f"{tuple(attractors.shape)}")
    points = as_states(points, "points", attractors.shape[-1])
    _finite_states(points, "points", "validate_kef")
    labels = basin_labels(field, points, attractors, T) if labels is None else labels
    err = separatrix_error(kef, field, attractors[0], attractors[1], T=T, **error_kw)
    return {
        "basin_agreement": basin_agreement(kef, points, labels),
        "unconverged": int((labels < 0).sum()),
        "median": err["median"], "p90": err["p90"], "r2": err["r2"], "s_true": err["s_true"],
    }
