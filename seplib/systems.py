"""Analytic bistable vector fields, and what is known about them.

A field is a plain callable ``f(x)`` on ``Tensor[..., d]`` that returns ``Tensor[..., d]``:
batched over any leading dimensions, in the input's dtype and on the input's device.
"""
import math
import numbers
from dataclasses import dataclass, field as dc_field
from typing import Callable

import torch

from ._guards import as_states, finite_real, seeded


@dataclass(frozen=True)
class System:
    """A vector field with its dimension and its known fixed points.

    ``attractors`` is a ``[k, d]`` list of the stable points (k = 2 but for the many-basin
    systems), ``saddle`` the fixed point on the separatrix between the two (for k > 2: the
    ``[m, d]`` list of the saddles with one unstable direction), ``separatrix`` (optional) a
    function giving, for points ``x``, a signed quantity whose zero set is the true separatrix
    (for plots and tests), ``basins`` (optional) one giving the exact index of each point's
    attractor.
    """

    name: str
    dim: int
    f: Callable[[torch.Tensor], torch.Tensor]
    attractors: list
    saddle: list
    separatrix: Callable[[torch.Tensor], torch.Tensor] | None = None
    params: dict = dc_field(default_factory=dict)
    basins: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.f(x)

    def separatrix_value(self, x: torch.Tensor) -> torch.Tensor:
        """A signed quantity that is 0 on the separatrix and > 0 in the basin of
        ``attractors[1]``: the exact basin of every point, where it is known."""
        if self.separatrix is None:
            raise ValueError(f"{self.name}: its separatrix has no closed form; find basins by "
                             "integration (seplib.basin_labels)")
        self._check(x)
        return self.separatrix(x)

    def basin(self, x: torch.Tensor) -> torch.Tensor:
        """The exact index in ``attractors`` of the basin of each point (``[..., d] -> [...]``,
        long), where it is known."""
        self._check(x)
        if self.basins is not None:
            return self.basins(x)
        return (self.separatrix_value(x) > 0).long()

    def _check(self, x):
        if self.dim == 1:   # elementwise: any shape is a batch of 1-D states
            return
        if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != self.dim:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{self.name} is {self.dim}-dimensional: give points as a Tensor[..., {self.dim}], "
                             f"got {shape}")


def _bistable_1d(x):
    return x - x**3


def _bistable_2d(x):
    return torch.stack((x[..., 0] - x[..., 0] ** 3, -x[..., 1]), dim=-1)


def _real(value, name, system):
    """``value`` as a float, or a ValueError unless it is a finite real number."""
    number = finite_real(value)
    if number is None:
        raise ValueError(f"{system}: {name} must be a finite number, got {value!r}")
    return number


def bistable_1d() -> System:
    """dx/dt = x - x^3: attractors at +-1, separatrix (and repeller) at x = 0."""
    return System("bistable_1d", 1, _bistable_1d, [[-1.0], [1.0]], [0.0],
                  separatrix=lambda x: x[..., 0])


def bistable_2d() -> System:
    """dx/dt = x - x^3, dy/dt = -y: attractors (+-1, 0), saddle at 0, separatrix x = 0."""
    return System("bistable_2d", 2, _bistable_2d, [[-1.0, 0.0], [1.0, 0.0]], [0.0, 0.0],
                  separatrix=lambda x: x[..., 0])


def duffing(delta: float = 1.0) -> System:
    """Damped Duffing oscillator dx/dt = y, dy/dt = -delta*y + x - x^3.

    Attractors (+-1, 0), saddle at 0. The separatrix is the saddle's stable manifold, a curve
    with no closed form: ``seplib.flow`` finds it by integration.
    """
    delta = _real(delta, "delta", "duffing")
    if delta <= 0:
        raise ValueError(f"duffing: delta must be > 0 for damped, bistable dynamics, got {delta}")

    def f(x):
        px, py = x[..., 0], x[..., 1]
        return torch.stack((py, -delta * py + px - px**3), dim=-1)

    return System("duffing", 2, f, [[-1.0, 0.0], [1.0, 0.0]], [0.0, 0.0], params={"delta": delta})


def curved_bistable(a: float = 0.5) -> System:
    """The 2D bistable system seen through the bend u = x - a y^2:
    dx/dt = u - u^3 - 2 a y^2, dy/dt = -y.

    u obeys du/dt = u - u^3, so the attractors are (+-1, 0), the saddle is 0 and the separatrix
    is the parabola x = a y^2: a curved separatrix known exactly.
    """
    a = _real(a, "a", "curved_bistable")

    def f(x):
        px, py = x[..., 0], x[..., 1]
        u = px - a * py**2
        return torch.stack((u - u**3 - 2 * a * py**2, -py), dim=-1)

    return System("curved_bistable", 2, f, [[-1.0, 0.0], [1.0, 0.0]], [0.0, 0.0],
                  separatrix=lambda x: x[..., 0] - a * x[..., 1] ** 2, params={"a": a})


def mutual_inhibition(w: float = 2.0) -> System:
    """Two rate units that inhibit each other: dx/dt = -x - w tanh(y), dy/dt = -y - w tanh(x).

    For w > 1 one unit wins: attractors (s, -s) and (-s, s) with s = w tanh(s), saddle at 0, and
    the diagonal x = y as separatrix (the flow keeps it invariant and carries it to the saddle).
    """
    w = _real(w, "w", "mutual_inhibition")
    if w <= 1:
        raise ValueError(f"mutual_inhibition: w must be > 1 for two attractors, got {w}")
    s = w
    for _ in range(200):            # s = w tanh(s): a contraction near the positive root
        s = w * math.tanh(s)

    def f(x):
        return -x - w * torch.tanh(x.flip(-1))

    return System("mutual_inhibition", 2, f, [[-s, s], [s, -s]], [0.0, 0.0],
                  separatrix=lambda x: x[..., 0] - x[..., 1], params={"w": w})


def analytic_kef_1d(x: torch.Tensor) -> torch.Tensor:
    """The standard KEF of dx/dt = x - x^3 with eigenvalue 1: x / sqrt|1 - x^2| (up to scale)."""
    x = as_states(x, "x") if not isinstance(x, torch.Tensor) else x   # a list or an array of numbers
    return x / torch.sqrt(torch.abs(1 - x**2))


def _warped_frame(system, dim, seed, rates):
    """What bistable_nd and saddle_nd share, checked and drawn from ``seed`` in this order:
    ``(dim, (low, high), generator, Q, r_i, w_i)``: a random rotation Q, the contraction rates r_i
    spread log-evenly over ``rates`` in a random order, weights w_i random in [0, 2]. The
    generator goes on to draw what each system adds."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 2:
        raise ValueError(f"{system}: dim must be an integer >= 2, got {dim!r}")
    dim = int(dim)
    try:
        low, high = (finite_real(r) for r in rates)
    except (TypeError, ValueError):
        low = high = None
    if low is None or high is None or not 0 < low <= high:
        raise ValueError(f"{system}: rates must be (low, high) with 0 < low <= high, got {rates!r}")
    gen = seeded(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))            # a rotation that depends on the seed only
    r_i = torch.logspace(math.log10(low), math.log10(high), dim - 1, dtype=torch.float64)
    r_i = r_i[torch.randperm(dim - 1, generator=gen)]
    w_i = 2 * torch.rand(dim - 1, generator=gen, dtype=torch.float64)
    return dim, (low, high), gen, q, r_i, w_i


def bistable_nd(dim: int, seed: int = 0, curvature: float = 0.5, rates=(0.5, 2.0)) -> System:
    """A d-dimensional bistable system whose separatrix is a curved hypersurface known exactly.

    In coordinates z = Q^T x (Q a random rotation, fixed by ``seed``) it is a warped double well:
    with u = z_0 - c(z), c(z) = curvature * log(1 + rho^2), rho^2 = sum_i w_i z_i^2 over i >= 1
    (weights w_i random in [0, 2]),

        du/dt = u - u^3,   dz_i/dt = -r_i z_i  (i >= 1),

    the contraction rates r_i spread log-evenly over ``rates`` in a random order. So u flows to
    +-1: the attractors are x = +-Q e_0, the saddle is 0 (unstable rate 1, stable rates r_i),
    and the separatrix is u = 0, that is z_0 = c(z): a paraboloid near the saddle that flattens
    to a logarithm far out (so the field stays tame there). ``separatrix_value(x)`` is u,
    positive in the basin of ``attractors[1]``.
    """
    dim, (low, high), gen, q, r_i, w_i = _warped_frame("bistable_nd", dim, seed, rates)
    curvature = _real(curvature, "curvature", "bistable_nd")
    params = {"dim": dim, "seed": seed, "curvature": curvature, "rates": (low, high)}

    def u_of(z):
        rho2 = (w_i.to(z) * z[..., 1:] ** 2).sum(-1)
        return z[..., 0] - curvature * torch.log1p(rho2), rho2

    def f(x):
        z = x @ q.to(x)
        (u, rho2), rest = u_of(z), z[..., 1:]
        # dz_0/dt = du/dt + sum_i dc/dz_i dz_i/dt, dc/dz_i = 2 curvature w_i z_i / (1 + rho^2)
        bend = 2 * curvature * (w_i.to(z) * r_i.to(z) * rest**2).sum(-1) / (1 + rho2)
        dz = torch.cat(((u - u**3 - bend).unsqueeze(-1), -r_i.to(z) * rest), dim=-1)
        return dz @ q.to(x).T

    e0 = q[:, 0].tolist()
    return System(f"bistable_nd({dim})", dim, f, [[-v for v in e0], e0], [0.0] * dim,
                  separatrix=lambda x: u_of(x @ q.to(x))[0], params=params)


def saddle_nd(dim: int, seed: int = 0, curvature: float = 0.5, flip: float = 0.5, beta: float = 0.5,
              rates=(0.5, 2.0), shift: float = 1.0) -> System:
    """A d-dimensional bistable system whose separatrix may bend both ways, known exactly.

    In coordinates z = Q^T (x - x_s) (Q a random rotation, x_s a random point at distance
    ``shift`` from the origin, both fixed by ``seed``), with u = z_0 - c(z),

        c(z) = curvature * sum_{i >= 1} s_i log(1 + w_i z_i^2),
        du/dt = u (1 - u) (u + beta) / beta,   dz_i/dt = -r_i z_i  (i >= 1),

    weights w_i random in [0, 2] (each direction bends by its own amount), signs s_i = -1 on a
    random fraction ``flip`` of the directions and +1 on the rest (``flip=0.5``: a saddle-shaped
    separatrix, bending towards one attractor along some directions and towards the other along
    the others), contraction rates r_i spread log-evenly over ``rates``. u flows to 1 or to
    -beta: the attractors are x_s - beta Q e_0 and x_s + Q e_0, so the saddle x_s (unstable rate
    1) lies a fraction beta / (1 + beta) of the way from the first to the second, off the middle
    unless beta = 1, and the attractors contract at different rates, (1 + beta) / beta and
    1 + beta. ``separatrix_value(x)`` is u, positive in the basin of ``attractors[1]``.
    """
    dim, (low, high), gen, q, r_i, w_i = _warped_frame("saddle_nd", dim, seed, rates)
    curvature, flip, beta, shift = (_real(v, n, "saddle_nd") for v, n in
                                    ((curvature, "curvature"), (flip, "flip"), (beta, "beta"), (shift, "shift")))
    if not 0 <= flip <= 1:
        raise ValueError(f"saddle_nd: flip must be a fraction in [0, 1], got {flip!r}")
    if not beta > 0:
        raise ValueError(f"saddle_nd: beta must be > 0 (the first attractor's distance from the saddle), got {beta!r}")
    s_i = torch.ones(dim - 1, dtype=torch.float64)
    s_i[torch.randperm(dim - 1, generator=gen)[:round(flip * (dim - 1))]] = -1.0
    centre = torch.randn(dim, generator=gen, dtype=torch.float64)
    centre = shift * centre / centre.norm()
    params = {"dim": dim, "seed": seed, "curvature": curvature, "flip": flip, "beta": beta, "rates": (low, high),
              "shift": shift}

    def u_of(z):
        return z[..., 0] - curvature * (s_i.to(z) * torch.log1p(w_i.to(z) * z[..., 1:] ** 2)).sum(-1)

    def f(x):
        z = (x - centre.to(x)) @ q.to(x)
        u, rest = u_of(z), z[..., 1:]
        sw = (s_i * w_i).to(z)
        # dz_0/dt = du/dt + sum_i dc/dz_i dz_i/dt, dc/dz_i = 2 curvature s_i w_i z_i / (1 + w_i z_i^2)
        bend = 2 * curvature * (sw * r_i.to(z) * rest**2 / (1 + w_i.to(z) * rest**2)).sum(-1)
        du = u * (1 - u) * (u + beta) / beta
        dz = torch.cat(((du - bend).unsqueeze(-1), -r_i.to(z) * rest), dim=-1)
        return dz @ q.to(x).T

    e0 = q[:, 0]
    attractors = [(centre - beta * e0).tolist(), (centre + e0).tolist()]
    return System(f"saddle_nd({dim})", dim, f, attractors, centre.tolist(),
                  separatrix=lambda x: u_of((x - centre.to(x)) @ q.to(x)), params=params)


def _warped_switches(system, dim, m, seed, curvature, rates):
    """The frame of the many-basin systems: ``(dim, params, q, warp)``. In z = Q^T x the first
    ``m`` coordinates carry the switches and the rest contract at rates r_i; the switches'
    coordinates are u_j = z_j - c_j(z), c_j = curvature * sum_i s_ij log(1 + w_ij z_i^2) over
    the contracting i, with random weights w_ij in [0, 2] and signs s_ij (each sheet bends both
    ways). ``warp(x, g)`` is the field whose u follows du/dt = g(u)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < m:
        raise ValueError(f"{system}: dim must be an integer >= {m} (the switches' coordinates), got {dim!r}")
    dim = int(dim)
    if dim == m:
        q, gen = torch.eye(dim, dtype=torch.float64), seeded(seed)
        r_i = w = s = torch.zeros(0, dtype=torch.float64)
    else:
        _, (low, high), gen, q, _, _ = _warped_frame(system, dim, seed, rates)
        # _warped_frame spreads d - 1 rates; m switches leave d - m contracting coordinates
        r_i = torch.logspace(math.log10(low), math.log10(high), dim - m, dtype=torch.float64)
        r_i = r_i[torch.randperm(dim - m, generator=gen)]
        w = 2 * torch.rand(m, dim - m, generator=gen, dtype=torch.float64)
        s = torch.where(torch.rand(m, dim - m, generator=gen) < 0.5, -1.0, 1.0).double()
    curvature = _real(curvature, "curvature", system)

    def u_of(x):
        z = x @ q.to(x)
        rest = z[..., m:]
        c = curvature * (s.to(z) * torch.log1p(w.to(z) * rest[..., None, :] ** 2)).sum(-1)
        return z[..., :m] - c, z

    def warp(x, g):
        u, z = u_of(x)
        rest = z[..., m:]
        # dz_j/dt = du_j/dt + sum_i dc_j/dz_i dz_i/dt, dc_j/dz_i = 2 curvature s_ij w_ij z_i / (1 + w_ij z_i^2)
        r2 = rest[..., None, :] ** 2
        bend = 2 * curvature * ((s * w * r_i).to(z) * r2 / (1 + w.to(z) * r2)).sum(-1)
        dz = torch.cat((g(u) - bend, -r_i.to(z) * rest), dim=-1)
        return dz @ q.to(x).T

    return dim, curvature, q, u_of, warp


def multistable_nd(dim: int, bits: int = 3, seed: int = 0, curvature: float = 0.5, rates=(0.5, 2.0)) -> System:
    """A d-dimensional system with 2^bits attractors whose basins are known exactly: ``bits``
    independent switches, each a curved sheet. In z = Q^T x (Q a random rotation), with
    u_j = z_j - c_j(z) for j < bits (c_j bends the j-th sheet along the contracting coordinates,
    towards one side along some and the other along others),

        du_j/dt = u_j (1 - u_j^2) / (1 + u_j^2),   dz_i/dt = -r_i z_i  (i >= bits)

    (a double well that grows no faster than u far out, so that it stays tame for an integrator).

    The attractors are the sign patterns u = (+-1, ..., +-1), rest 0, at x = Q (+-1, ..., 0);
    attractor n has u_j = +1 where bit j of n is set (so ``attractors[n]`` is the n-th pattern).
    The saddles with one unstable direction have one u_j = 0 (bits * 2^(bits - 1) of them),
    ``basin(x)`` is the pattern of signs of u, and ``separatrix_value(x)`` is u_0 (> 0 where bit
    0 is set).
    """
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 8:
        raise ValueError(f"multistable_nd: bits must be an integer from 1 to 8 (2^bits attractors), got {bits!r}")
    dim, curvature, q, u_of, warp = _warped_switches("multistable_nd", dim, bits, seed, curvature, rates)
    weights = 2 ** torch.arange(bits)
    patterns = torch.tensor([[1.0 if n >> j & 1 else -1.0 for j in range(bits)] for n in range(2**bits)],
                            dtype=torch.float64)
    saddles = [torch.cat((p[:j], torch.zeros(1, dtype=torch.float64), p[j + 1:]))
               for j in range(bits) for p in patterns if p[j] < 0]
    embed = lambda u: torch.cat((u, torch.zeros(len(u), dim - bits, dtype=torch.float64)), -1) @ q.T
    params = {"dim": dim, "bits": bits, "seed": seed, "curvature": curvature, "rates": tuple(rates)}
    return System(f"multistable_nd({dim}, bits={bits})", dim, lambda x: warp(x, lambda u: u * (1 - u * u) / (1 + u * u)),
                  embed(patterns).tolist(), embed(torch.stack(saddles)).tolist(),
                  separatrix=lambda x: u_of(x)[0][..., 0], params=params,
                  basins=lambda x: ((u_of(x)[0] > 0).long() * weights.to(x.device)).sum(-1))


def wells_nd(dim: int, wells: int = 3, seed: int = 0, curvature: float = 0.5, rates=(0.5, 2.0)) -> System:
    """A d-dimensional system with ``wells`` attractors around a circle whose basins meet at an
    angle, known exactly. In z = Q^T x, with (u_0, u_1) = (z_0, z_1) - c(z) bent as in
    ``multistable_nd`` and u = r e^{i theta} in the plane,

        dr/dt = r (1 - r^2) / (1 + r^2),   dtheta/dt = -sin(k theta) r^k / (1 + r^k),   dz_i/dt = -r_i z_i,

    with k = ``wells``. The attractors are r = 1, theta = 2 pi n / k; the saddles (one unstable
    direction, rate k/2) are r = 1, theta = (2n + 1) pi / k; the basins are the sectors between
    the rays theta = (2n + 1) pi / k, which all meet at the source r = 0 (two unstable
    directions), at angles of 2 pi / k: neighbouring basins share a boundary, the others meet
    at a point of the plane only. Far out the flow grows no faster than r (it stays tame for an
    integrator). ``basin(x)`` is the sector of (u_0, u_1); ``separatrix_value``
    is -u_0 (the separatrix for k = 2).
    """
    if isinstance(wells, bool) or not isinstance(wells, numbers.Integral) or not 2 <= wells <= 12:
        raise ValueError(f"wells_nd: wells must be an integer from 2 to 12, got {wells!r}")
    k = int(wells)
    dim, curvature, q, u_of, warp = _warped_switches("wells_nd", dim, 2, seed, curvature, rates)

    def g(u):
        x, y = u[..., 0], u[..., 1]
        r2 = x * x + y * y
        zk = torch.complex(x, y) ** k
        s = zk.imag / (1 + r2 ** (k / 2))          # r^k sin(k theta) / (1 + r^k)
        radial = (1 - r2) / (1 + r2)
        return torch.stack((x * radial + y * s, y * radial - x * s), dim=-1)   # r' e_r - r s e_theta

    def basins(x):
        u = u_of(x)[0]
        theta = torch.atan2(u[..., 1], u[..., 0])
        return torch.remainder(torch.round(theta * k / (2 * math.pi)), k).long()

    angle = lambda n: torch.tensor([math.cos(n * math.pi / k), math.sin(n * math.pi / k)], dtype=torch.float64)
    embed = lambda u: torch.cat((u, torch.zeros(len(u), dim - 2, dtype=torch.float64)), -1) @ q.T
    attractors = embed(torch.stack([angle(2 * n) for n in range(k)]))
    saddles = embed(torch.stack([angle(2 * n + 1) for n in range(k)]))
    params = {"dim": dim, "wells": k, "seed": seed, "curvature": curvature, "rates": tuple(rates)}
    return System(f"wells_nd({dim}, wells={k})", dim, lambda x: warp(x, g), attractors.tolist(), saddles.tolist(),
                  separatrix=lambda x: -u_of(x)[0][..., 0], params=params, basins=basins)
