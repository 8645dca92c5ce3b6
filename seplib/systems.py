"""Analytic bistable vector fields, and what is known about them.

A field is a plain callable ``f(x)`` on ``Tensor[..., d]`` that returns ``Tensor[..., d]``:
batched over any leading dimensions, in the input's dtype and on the input's device.
"""
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


def analytic_kef_1d(x: torch.Tensor) -> torch.Tensor:
    """The standard KEF of dx/dt = x - x^3 with eigenvalue 1: x / sqrt|1 - x^2| (up to scale)."""
    return x / torch.sqrt(torch.abs(1 - x**2))
