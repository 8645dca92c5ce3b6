"""Where KEF training puts its samples: ``Sampling`` (the settings, which a chapter can print),
``sampling_region`` (the Sampling for the separatrix between two attractors, in any
dimension), the multi-scale Gaussian they give, and pairs of states along trajectories that
start from it."""
import math
import warnings

import torch

from ._guards import _short, as_ends, as_field, as_point, as_states, check_count, check_positive, finite_real
from .flow import expansion_rate, find_saddles, integrate, saddle_normal, separatrix_point

# The covariance scales of the reference tutorial, used by default throughout seplib.
DEFAULT_SCALES = (0.01, 0.1, 0.5, 1.0, 2.0, 4.0)
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
                         "widen the samples (the recipe's Sampling: centre, cov, scales), or pass eigenvalue= yourself")
    return mu


def sampled_saddles(field, sampler, seed=0, device="cpu"):
    """The saddles (one unstable direction) that Newton's method reaches from 256 points of each
    of the sampler's scales (``find_saddles``): ``(saddles [k, d], rates [k])``, fastest first."""
    x = sampler.sample(256, torch.Generator().manual_seed(seed + 1), device=device)
    return find_saddles(field, x.reshape(-1, sampler.dim))


class Sampling:
    """Where fit_kef puts its samples, for the separatrix between attractors a and b: a small
    object a chapter can print (``print(region)``) and change (``region.replace(radial=None)``).

    - ``centre``: a point (the saddle, where the separatrix is pinned); ``"auto"``: the saddles
      Newton's method reaches from samples around the origin (their centre), found at training;
      None: the origin.
    - ``cov``: ``"segment"``, |b - a|^2 (I / d + e e^T) with e the unit vector along b - a (the
      scale-1 cloud about |b - a| from the centre in any d, spread along the segment);
      ``"identity"``; or a ``[d, d]`` matrix.
    - ``scales``: one Gaussian N(centre, s cov) per scale s.
    - ``segment``: one more group of samples around the segment a-b, drawn like
      ``segment_clouds``' points.
    - ``radial``: a length r: the network also sees |x - centre|^2 / r^2 (``kef.Radial``);
      ``"segment"``: r = |b - a|; None: it does not.
    - ``rate``: the flow's unstable rate at the centre when known (lambda "auto" is 0.4 times
      it); None: fit_kef finds it from the samples.
    Why each choice: benchmarks/RESULTS.md, section 4.
    """

    def __init__(self, centre="auto", cov="identity", scales=DEFAULT_SCALES, segment=False, radial=None,
                 rate=None):
        if isinstance(centre, str) and centre != "auto":
            raise ValueError(f"centre must be 'auto', None (the origin) or a point, got {centre!r}")
        if isinstance(cov, str) and cov not in ("segment", "identity"):
            raise ValueError(f"cov must be 'segment', 'identity' or a [d, d] matrix, got {cov!r}")
        if not isinstance(segment, bool):
            raise ValueError(f"segment must be True (one group of samples around the segment a-b) or False, "
                             f"got {segment!r}")
        if radial is not None and radial != "segment" and not _positive(radial):
            raise ValueError(f"radial must be None, 'segment' (|b - a|) or a finite length > 0, got {radial!r}")
        if rate is not None and not _positive(rate):
            raise ValueError(f"rate must be None or the saddle's unstable rate, a finite number > 0, got {rate!r}")
        if not isinstance(centre, str) and centre is not None:
            centre = as_point(centre, "centre")
        self.centre, self.cov, self.segment, self.radial = centre, cov, segment, radial
        self.scales = tuple(float(s) for s in torch.as_tensor(scales, dtype=torch.float64).flatten())
        self.rate = None if rate is None else float(rate)
        MultiscaleGaussian(1, self.scales)   # refuses empty or non-positive scales now, not at training

    def replace(self, **changes):
        """A copy with some settings changed: ``region.replace(radial=None)``."""
        kept = dict(centre=self.centre, cov=self.cov, scales=self.scales, segment=self.segment,
                    radial=self.radial, rate=self.rate)
        unknown = set(changes) - set(kept)
        if unknown:
            raise TypeError(f"Sampling has no setting {sorted(unknown)}; it has {sorted(kept)}")
        return Sampling(**(kept | changes))

    def sampler(self, a, b):
        """The ``MultiscaleGaussian`` these settings give for attractors ``a`` and ``b``."""
        a, b = as_ends(a, b, torch.float32)
        d = len(a)
        if isinstance(self.cov, str) and self.cov == "segment":
            distance = (b - a).norm()
            e = (b - a) / distance
            cov = distance**2 * (torch.eye(d) / d + torch.outer(e, e))
        else:
            cov = None if isinstance(self.cov, str) else self.cov
        mean = None if isinstance(self.centre, str) else self.centre
        if mean is not None and len(mean) != d:
            raise ValueError(f"Sampling's centre has dimension {len(mean)}, the attractors {d}")
        return MultiscaleGaussian(d, self.scales, mean, cov, (a, b) if self.segment else None)

    def radius(self, a, b):
        """The radial feature's length for attractors a, b, or None."""
        if self.radial is None:
            return None
        return (b - a).norm().item() if self.radial == "segment" else float(self.radial)

    def __repr__(self):
        if isinstance(self.centre, str):
            centre = "the saddle found from samples around the origin"
        elif self.centre is None:
            centre = "the origin"
        else:
            centre = f"{_short(self.centre, 4)} (d = {len(self.centre)})"
        if isinstance(self.cov, str):
            cov = "|b - a|^2 (I/d + e e^T), e along b - a" if self.cov == "segment" else "I"
        else:
            cov = f"a {tuple(self.cov.shape)} matrix" if torch.is_tensor(self.cov) else "a matrix"
        if self.radial is None:
            radial = "no"
        elif self.radial == "segment":
            radial = "|x - centre|^2 / |b - a|^2"
        else:
            radial = f"|x - centre|^2 / {self.radial:g}^2"
        rows = [("centre", centre), ("cov", cov), ("scales", ", ".join(f"{s:g}" for s in self.scales)),
                ("segment", "yes: one more group around the segment a-b" if self.segment else "no"),
                ("radial", radial),
                ("rate", "found from the samples" if self.rate is None else f"{self.rate:.4g} (unstable, at the centre)")]
        return "Sampling\n" + "\n".join(f"  {k:<8} {v}" for k, v in rows)


def _positive(value):
    number = finite_real(value)
    return number is not None and number > 0


def sampling_region(field, a, b, saddle="auto", T=60.0):
    """Where to sample for the separatrix between attractors ``a`` and ``b``, in any dimension:
    the ``Sampling`` that ``fit_kef(field, a, b)`` uses by default.

    Gaussians N(saddle, s |b - a|^2 (I / d + e e^T)), e along b - a, spread along the segment
    (without that, in many dimensions almost every sample of a curved separatrix's region lies
    in one basin); one more group around the segment itself; the network also sees
    |x - saddle|^2 / |b - a|^2 (far out the separatrix bends with the distance alone).

    ``saddle="auto"`` finds the saddle: Newton's method on f = 0 from such Gaussians around
    the separatrix point of the segment (bisection on the ODE), the saddle nearest that point
    if several; where none is found it warns, centres on the separatrix point and takes the
    rate from the flow's expansion rate there. ``saddle`` may also be a
    point (from ``find_saddle`` or a network's card), or None (the separatrix point). The
    figures behind each choice are in benchmarks/RESULTS.md, section 4.
    """
    if isinstance(saddle, str) and saddle != "auto":
        raise ValueError(f"saddle must be 'auto', None or a point, got {saddle!r}")
    a, b = as_ends(a, b, torch.float32)
    region = Sampling(None, "segment", segment=True, radial="segment")
    rate = None
    if saddle is None or isinstance(saddle, str):
        # to 2^-12 of |b - a| where Newton's method then finds the saddle; 30 halvings otherwise
        mean = separatrix_point(field, a, b, T, n_iter=12 if saddle == "auto" else 30)
        around = region.replace(centre=mean, segment=False).sampler(a, b)
        found = sampled_saddles(field, around)[0] if saddle == "auto" else None
        if found is not None and len(found):
            saddle = found[(found - mean).norm(dim=-1).argmin()]
        else:
            if found is not None:
                warnings.warn("sampling_region found no saddle near the separatrix point (Newton's "
                              "method on f = 0 from the samples reached none with one unstable direction), so "
                              f"the samples are centred on the separatrix point {_short(mean)} and lambda comes "
                              "from the flow's expansion rate over them. Pass saddle= (e.g. from "
                              "sl.find_saddle) if you know it", RuntimeWarning, stacklevel=2)
            rate, saddle = sampled_expansion_rate(field, around), None
    if saddle is not None:
        try:
            mean = torch.as_tensor(saddle, dtype=a.dtype).flatten()
        except (TypeError, RuntimeError, ValueError):   # not numbers
            mean = torch.full((0,), float("nan"))
        if mean.shape != a.shape or not torch.isfinite(mean).all():
            raise ValueError(f"saddle must be a finite point of dimension {len(a)} (e.g. from sl.find_saddle), "
                             f"got shape {tuple(mean.shape)}")
        rate, _ = saddle_normal(field, mean)   # refuses a point that is not a saddle
    return region.replace(centre=mean, rate=rate)


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
                                 "pass Training(flow_time=None)") from err
    which = torch.arange(len(x0), device=x0.device).repeat(n_times)  # states are [n_times, N, d]
    end = states.reshape(-1, x0.shape[-1])
    t = times[:, None].expand(-1, len(x0)).reshape(-1)
    finite = torch.isfinite(end).all(dim=-1)
    if not finite.any():
        raise FloatingPointError("every trajectory from the samples blew up: check the field on the "
                                 "sampled region, or pass Training(flow_time=None)")
    return which[finite], end[finite], t[finite]
