import pytest
import torch

import seplib as sl


class Shifted(torch.nn.Module):
    """psi(x) = x - shift: a KEF-like function whose zero set is the line x = shift."""

    def __init__(self, shift):
        super().__init__()
        self.shift = torch.nn.Parameter(torch.tensor(float(shift)))

    def forward(self, x):
        return x[..., 0] - self.shift


def test_exact_zero_set_scores_perfectly():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    _, _, points = sl.grid((-2, -2), (2, 2), 41)
    labels = sl.basin_labels(system, points, attractors)
    assert sl.basin_agreement(Shifted(1e-4), points, labels) == 1.0
    assert sl.basin_agreement(lambda x: -x[..., 0], points, labels) == 1.0  # either sign
    err = sl.separatrix_error(Shifted(0.0), system, attractors[0], attractors[1], n_curves=50)
    assert err["median"] < 1e-3 and err["p90"] < 1e-3 and err["r2"] > 0.999


def test_a_shifted_zero_set_is_measured():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    err = sl.separatrix_error(Shifted(0.1), system, attractors[0], attractors[1], n_curves=50)
    # along a curve the crossing moves by at least the shift in x
    assert 0.1 <= err["median"] < 0.2


def test_true_crossings_can_be_reused():
    system = sl.bistable_2d()
    a, b = torch.tensor(system.attractors)
    first = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=30)
    again = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=30, s_true=first["s_true"])
    assert again["median"] == first["median"] and torch.equal(again["true"], first["true"])
    with pytest.raises(ValueError, match="s_true"):
        sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=20, s_true=first["s_true"])
