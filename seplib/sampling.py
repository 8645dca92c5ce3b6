"""Where KEF training puts its samples: a multi-scale Gaussian, and pairs of states along
trajectories that start from it."""
import math
import warnings

import torch

from ._guards import _short, as_ends, as_field, as_states, check_count, check_positive
from .flow import expansion_rate, find_saddles, integrate, saddle_normal, separatrix_point

# The covariance scales of the reference tutorial, used by default throughout seplib.
DEFAULT_SCALES = (0.01, 0.1, 0.5, 1.0, 2.0, 4.0)
# sampling_region's training length per objective: the same time either way (a step on twice the
# batch costs less than two); see its docstring and benchmarks/RESULTS.md, section 4
STANDARD_STEPS = {"epochs": 4300, "batch_size": 192}
SQUASHED_STEPS = {"epochs": 8600, "batch_size": 96}
# the norms of the offsets around a segment, as fractions of |b - a|: segment_clouds' defaults and
# MultiscaleGaussian(segment=)'s group, the space between the attractors that basin agreement scores
SEGMENT_NORMS = (0.1, 1.0)


def around_segment(a, b, n, lo, hi, generator):
    """``n`` points around the segment from ``a`` to ``b`` (checked tensors of one dtype): a point
    of the segment, uniform, plus a random direction times a norm uniform in [lo, hi] x |b - a|,
    drawn in a's dtype from ``generator``. ``segment_clouds`` and ``MultiscaleGaussian(segment=)``
    both draw this way."""
    along = torch.rand(n, 1, generator=generator, dtype=a.dtype)
    direction = torch.randn(n, a.shape[-1], generator=generator, dtype=a.dtype)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    size = (lo + (hi - lo) * torch.rand(n, 1, generator=generator, dtype=a.dtype)) * (b - a).norm()
    return a + along * (b - a) + size * direction


class MultiscaleGaussian:
    """Gaussians N(mean, scale * cov), one per scale, sharing a mean and a base covariance, and,
    with ``segment=(a, b)``, one more group around the segment from a to b.

    ``sample(n, generator)`` returns ``Tensor[groups, n, d]``: ``n`` points from each scale, then
    ``n`` from the segment's group. The scales multiply the covariance, so a scale s spreads the
    points by sqrt(s). The segment's group is drawn as ``segment_clouds`` draws its points: a
    point of the segment, uniform, plus a random direction times a norm uniform in
    ``SEGMENT_NORMS`` x |b - a|.
    """

    def __init__(self, dim, scales=DEFAULT_SCALES, mean=None, cov=None, segment=None):
        check_count(dim, "dim")
        self.dim = int(dim)
        scales = torch.as_tensor(scales, dtype=torch.float64).flatten()
        if scales.numel() == 0:
            raise ValueError("scales is empty: give at least one positive scale, e.g. [0.1, 1.0]")
        if not torch.isfinite(scales).all() or (scales <= 0).any():
            raise ValueError(f"scales must be finite and > 0, got {scales.tolist()}")
        mean = torch.zeros(self.dim, dtype=torch.float64) if mean is None else torch.as_tensor(mean, dtype=torch.float64)
        if mean.shape != (self.dim,):
            raise ValueError(f"mean has shape {tuple(mean.shape)}, expected ({self.dim},) for a {self.dim}-D field")
        cov = torch.eye(self.dim, dtype=torch.float64) if cov is None else torch.as_tensor(cov, dtype=torch.float64)
        for name, value in (("mean", mean), ("cov", cov)):
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} has NaN or inf entries: give finite numbers")
        if cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov has shape {tuple(cov.shape)}, expected ({self.dim}, {self.dim})")
        if not torch.allclose(cov, cov.T):
            raise ValueError("cov is not symmetric: a covariance must equal its transpose")
        chol, info = torch.linalg.cholesky_ex(cov)
        if info != 0:
            raise ValueError("cov is not positive definite: all its eigenvalues must be > 0")
        self.scales = scales
        self.mean = mean
        self.cov = cov
        self._chol = chol
        if segment is not None:
            try:
                a, b = segment
            except (TypeError, ValueError) as err:
                raise ValueError(f"segment must be two points (the attractors a, b), got {segment!r}") from err
            segment = torch.stack(as_ends(a, b, torch.float64, self.dim, ("segment's first point",
                                                                          "segment's second point")))
        self.segment = segment
        self.groups = len(scales) + (segment is not None)

    def sample(self, n, generator=None, dtype=torch.float32, device="cpu"):
        check_count(n, "n")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or "
                             f"None, got {type(generator).__name__}")
        # normals drawn in float32, which torch makes much faster than float64 ones: in many
        # dimensions they were a large part of an epoch (benchmarks/RESULTS.md, section 6)
        z = torch.randn(len(self.scales), n, self.dim, generator=generator, dtype=torch.float32).to(dtype)
        chol, scales = self._chol.to(dtype), self.scales.sqrt().to(dtype)
        # in place: a fresh buffer of a large batch costs more than the arithmetic on it
        x = (z @ chol.T).mul_(scales[:, None, None]).add_(self.mean.to(dtype))
        if self.segment is not None:   # drawn in float32 like the normals above
            a, b = self.segment.to(torch.float32)
            x = torch.cat((x, around_segment(a, b, n, *SEGMENT_NORMS, generator).to(dtype)[None]))
        return x.to(device=device)


def sampled_expansion_rate(field, sampler, seed=0, device="cpu"):
    """The flow's expansion rate (``expansion_rate``) over 256 points of each of the sampler's
    scales: near a saddle, its unstable rate. Raises ValueError where no state is pulled apart
    (no saddle in the sampled region)."""
    x = sampler.sample(256, torch.Generator().manual_seed(seed + 1), device=device)
    mu = expansion_rate(field, x.reshape(-1, sampler.dim))
    if not mu > 0:
        raise ValueError(f"the field pulls no nearby states apart in the sampled region (expansion "
                         f"rate {mu:.3g}): there is no saddle there, so no separatrix to find. Move or "
                         "widen the samples (mean, cov, scales), or pass eigenvalue= yourself")
    return mu


def sampled_saddles(field, sampler, seed=0, device="cpu"):
    """The saddles (one unstable direction) that Newton's method reaches from 256 points of each
    of the sampler's scales (``find_saddles``): ``(saddles [k, d], rates [k])``, fastest first."""
    x = sampler.sample(256, torch.Generator().manual_seed(seed + 1), device=device)
    return find_saddles(field, x.reshape(-1, sampler.dim))


def sampling_region(field, a, b, rhs="standard", T=60.0, saddle="auto", radial=True):
    """How to train psi for the separatrix between attractors ``a`` and ``b``, in any dimension:
    a dict of ``fit_kef`` keyword arguments.

        a, b = sl.find_attractors(field, dim)
        kef = sl.fit_kef(field, dim, **sl.sampling_region(field, a, b))

    - Where: Gaussians with covariance |b - a|^2 (I / d + e e^T), e the unit vector from a to b.
      The first term puts the scale-1 cloud at about |b - a| from the centre whatever d is; the
      second spreads it along the segment. Without it almost every sample of a curved
      separatrix's region lies in one basin in many dimensions (a random direction is nearly
      orthogonal to b - a), and psi's sign there follows no basin.
    - And one more group around the segment itself (``fit_kef(segment=(a, b))``): a point of
      the segment, uniform, plus a random direction times a norm uniform in 0.1-1 x |b - a|,
      the law of ``segment_clouds``, the space between the attractors that basin agreement
      scores. The Gaussians, centred on the saddle, put few samples far off the segment near
      its ends, where psi's sign went wrong. On the book's 64-unit GRU this group took basin
      agreement from 0.988-0.990 to 0.991-0.994 over six fits, and it raised it on three more
      GRUs and on bistable_nd (benchmarks/RESULTS.md, section 4). No state is labelled for it:
      it is where the equation is asked to hold.
    - Centred on the saddle, where the separatrix is pinned. ``saddle="auto"`` finds it:
      ``find_saddles`` (Newton's method on f = 0) from such Gaussians around the separatrix
      point of the segment (bisection on the ODE), the saddle nearest that point if several.
      Where it finds none it warns and centres on the separatrix point. ``saddle`` may also be
      a point (from ``find_saddle`` or a network's card), or None: the separatrix point, with
      lambda from the flow's expansion rate over the samples (``sampled_expansion_rate``).
    - lambda = ``AUTO_EIGENVALUE_RATIO`` (0.4) times the saddle's unstable rate mu, for both
      objectives, as fit_kef does in two dimensions. (The squashed objective once took mu itself;
      on our 64-unit GRUs its psi stays small, where psi - psi^3 ~ psi and a ratio of 1 leaves
      the sign far out to tiny values.)
    - How: no early stop, at a learning rate of 1e-2 (more than ``fit_kef``'s 3e-3: it moved the
      standard objective's zero set onto the separatrix at d = 32); 4300 epochs of 192 samples per
      group for the standard objective, 8600 of 96 for the squashed one, about the same time,
      each then 1000 more with ``refine`` (below). (5000 and 10000 before the segment's group
      came: with it each epoch draws 7 groups, not 6, and 6/7 of the epochs keep the time.) The
      larger batch raised the standard psi's basin agreement on our 64-unit GRU from 0.979-0.988 to 0.9896-0.9923 over six fit seeds
      (before ``refine``); the squashed psi's crossings moved off with it, so that objective keeps
      the smaller batch. Trajectory pairs (``flow_time="auto"``) are weighted 1, not ``fit_kef``'s
      10. The pairs carry psi's sign from where the Gaussians put many samples to where they put
      few, far from the saddle: on our 64-unit GRU they raised the worst basin agreement over six
      seeds from 0.977 to 0.986 (squashed) and from 0.976 to 0.980 (standard). (With samples
      spread evenly around the separatrix point, before the region was spread along the segment,
      they had pulled the zero set off the separatrix.)
    - Then ``refine=(a, b)``: the 2000 samples nearest psi's zero set are simulated to see
      which attractor each reaches, and training goes on with their signs held
      (``fit_kef(refine=)``). Far from the saddle the equation barely sees where the zero set
      is; there a few thousand trajectories tell. With lambda 0.4 mu it took the squashed
      psi on our two tuning GRUs from 0.953-0.991 to 0.991-0.996, every target met; on the
      book's GRU and on bistable_nd, held out, agreement moved within the scatter between runs.
    - What: with ``radial`` (the default) the network also sees |x - saddle|^2 / |b - a|^2
      (``fit_kef(radial=)``, ``kef.Radial``). A state a distance r off the segment in a random
      direction sees the separatrix's mean curvature, so there it bends with r alone; the
      feature gives psi that bend in one unit. On bistable_nd at d = 128 it took basin
      agreement from 0.976-0.990 to 0.990-0.994 over both objectives and three systems; on our
      64-unit GRU it moved it within the spread between fit seeds.
    On bistable_nd the separatrix point is the saddle and the sampled rate is its rate. On our
    64-unit GRU the separatrix point is 1.16 from the saddle (|b - a| = 5.57), and the sampled
    rate is 2.3 times the saddle's: there the saddle took the median crossing error from 3% of
    |b - a| to 0.2-0.4%. The figures behind these choices are in benchmarks/RESULTS.md
    (section 4).
    """
    if rhs not in ("standard", "squashed"):
        raise ValueError(f"rhs must be 'standard' or 'squashed', got {rhs!r}")
    if isinstance(saddle, str) and saddle != "auto":
        raise ValueError(f"saddle must be 'auto', None or a point, got {saddle!r}")
    if not isinstance(radial, bool):
        raise ValueError(f"radial must be True (the network also sees |x - saddle|^2) or False, got {radial!r}")
    a, b = as_ends(a, b, torch.float32)
    distance = (b - a).norm()
    d = len(a)
    e = (b - a) / distance
    cov = distance**2 * (torch.eye(d) / d + torch.outer(e, e))
    if saddle is None or isinstance(saddle, str):
        # to 2^-12 of |b - a| where Newton's method then finds the saddle; 30 halvings otherwise
        mean = separatrix_point(field, a, b, T, n_iter=12 if saddle == "auto" else 30)
        sampler = MultiscaleGaussian(d, DEFAULT_SCALES, mean, cov)
        found = sampled_saddles(field, sampler)[0] if saddle == "auto" else None
        if found is not None and len(found):
            saddle = found[(found - mean).norm(dim=-1).argmin()]
        else:
            if found is not None:
                warnings.warn("sampling_region found no saddle near the separatrix point (Newton's method "
                              "on f = 0 from the samples reached none with one unstable direction), so the "
                              f"samples are centred on the separatrix point {_short(mean)} and lambda comes "
                              "from the flow's expansion rate over them. Pass saddle= (e.g. from "
                              "sl.find_saddle) if you know it", RuntimeWarning, stacklevel=2)
            rate, saddle = sampled_expansion_rate(field, sampler), None
    if saddle is not None:
        try:
            mean = torch.as_tensor(saddle, dtype=a.dtype).flatten()
        except (TypeError, RuntimeError, ValueError):   # not numbers
            mean = torch.full((0,), float("nan"))
        if mean.shape != a.shape or not torch.isfinite(mean).all():
            raise ValueError(f"saddle must be a finite point of dimension {d} (e.g. from sl.find_saddle), "
                             f"got shape {tuple(mean.shape)}")
        rate, _ = saddle_normal(field, mean)   # refuses a point that is not a saddle
    ends = torch.stack((a, b))
    region = {"mean": mean, "cov": cov, "rhs": rhs, "flow_time": "auto", "pair_weight": 1.0, "tol": None,
              "lr": 1e-2, "refine": ends, "segment": ends}
    region.update(STANDARD_STEPS if rhs == "standard" else SQUASHED_STEPS)
    from .kef import AUTO_EIGENVALUE_RATIO   # kef imports this module
    region["eigenvalue"] = AUTO_EIGENVALUE_RATIO * rate
    if radial:
        region["radial"] = distance.item()
    return region


def trajectory_pairs(field, x0, longest, n_times=8):
    """Pairs of states (x(0), x(t)) along the trajectories from the points ``x0`` (``[N, d]``),
    at ``n_times`` times t spaced evenly in log from ``longest / 32`` to ``longest``.

    Returns ``(start [M, d], end [M, d], t [M])``, with the pairs whose trajectory left the
    floats (inf or NaN) dropped. Far from the saddle the flow is fast and the Gaussians put
    almost no samples where it goes; a pair ties a state to where it will be, with no sample
    needed in between.
    """
    x0 = as_states(x0, "x0")
    if x0.dim() != 2:
        raise ValueError(f"x0 must be a tensor [N, d], one start per row, got shape {tuple(x0.shape)}")
    check_count(n_times, "n_times")
    which, end, t = pair_ends(field, x0, longest, n_times)
    return x0[which], end, t


def pair_ends(field, x0, longest, n_times=8):
    """``trajectory_pairs`` with each pair's start given as its row of ``x0``: ``(which [M],
    end [M, d], t [M])``, the start being ``x0[which]``. fit_kef keeps psi's sign at x0 and
    compares it with the sign at the ends, evaluating psi at x0 once, not ``n_times`` times."""
    check_positive(longest, "longest", "a finite time")
    field = as_field(field, x0.shape[-1])
    times = torch.logspace(math.log10(longest / 32), math.log10(longest), n_times,
                           dtype=x0.dtype, device=x0.device)
    with torch.no_grad():
        if not torch.isfinite(field(x0)).all():
            raise FloatingPointError("the field returned NaN or inf at the samples: check f on the "
                                     "sampled region (scales, mean), or clip the field")
    try:
        states = integrate(field, x0, torch.cat((times.new_zeros(1), times)), rtol=1e-4, atol=1e-5)[1:]
    except FloatingPointError as err:   # integrate's: NaN, inf or a stiff field
        raise FloatingPointError(f"integrating the field from the samples failed ({err.__cause__}): the "
                                 "field is NaN, inf or too stiff along the trajectories; check f, or "
                                 "pass flow_time=None") from err
    which = torch.arange(len(x0), device=x0.device).repeat(n_times)  # states are [n_times, N, d]
    end = states.reshape(-1, x0.shape[-1])
    t = times[:, None].expand(-1, len(x0)).reshape(-1)
    finite = torch.isfinite(end).all(dim=-1)
    if not finite.any():
        raise FloatingPointError("every trajectory from the samples blew up: check the field on the "
                                 "sampled region, or pass flow_time=None")
    return which[finite], end[finite], t[finite]
