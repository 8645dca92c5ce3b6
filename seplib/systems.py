"""Analytic bistable vector fields, and what is known about them.

A field is a plain callable ``f(x)`` on ``Tensor[..., d]`` that returns ``Tensor[..., d]``:
batched over any leading dimensions, in the input's dtype and on the input's device.
"""
import math
from dataclasses import dataclass, field as dc_field
from typing import Callable

import torch


@dataclass(frozen=True)
class System:
    """A vector field with its dimension and its known fixed points.

    ``attractors`` is a ``[2, d]`` list of the stable points, ``saddle`` the fixed point on the
    separatrix between them, ``separatrix`` (optional) a function giving, for points ``x``, a signed
    quantity whose zero set is the true separatrix (for plots and tests).
    """

    name: str
    dim: int
    f: Callable[[torch.Tensor], torch.Tensor]
    attractors: list
    saddle: list
    separatrix: Callable[[torch.Tensor], torch.Tensor] | None = None
    params: dict = dc_field(default_factory=dict)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def _bistable_1d(x):
    return x - x**3


def _bistable_2d(x):
    return torch.stack((x[..., 0] - x[..., 0] ** 3, -x[..., 1]), dim=-1)


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
    return x / torch.sqrt(torch.abs(1 - x**2))
