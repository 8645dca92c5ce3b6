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


def test_relative_tol_stops_the_bisection_early_at_the_same_crossings():
    system = sl.bistable_2d()
    a, b = torch.tensor(system.attractors)
    plain = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=20)
    early = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=20, relative_tol=0.5)
    torch.testing.assert_close(early["s_true"], plain["s_true"], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="relative_tol must lie in"):
        sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=5, relative_tol=2.0)
    with pytest.raises(ValueError, match=r"on 5 of 5 curves .* a and b lie in one basin"):
        sl.separatrix_error(Shifted(0.1), system, a, a / 2, n_curves=5)   # both in a's basin


def test_true_crossings_can_be_reused():
    system = sl.bistable_2d()
    a, b = torch.tensor(system.attractors)
    first = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=30)
    again = sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=30, s_true=first["s_true"])
    assert again["median"] == first["median"] and torch.equal(again["true"], first["true"])
    with pytest.raises(ValueError, match="s_true"):
        sl.separatrix_error(Shifted(0.1), system, a, b, n_curves=20, s_true=first["s_true"])


@pytest.mark.parametrize("call, error, message", [
    (lambda a, b: sl.segment_clouds(torch.full((8,), float("nan")), b, 10), ValueError, "a has NaN"),
    (lambda a, b: sl.segment_clouds(a, b[:3], 10), ValueError, "b must be a 1-D tensor of length 8"),
    (lambda a, b: sl.segment_clouds(a, a, 10), ValueError, "same point"),
    (lambda a, b: sl.segment_clouds(a, b, 0), ValueError, "n must be a positive integer"),
    (lambda a, b: sl.segment_clouds(a, b, 10, lo=2.0, hi=1.0), ValueError, "0 <= lo <= hi"),
    (lambda a, b: sl.separatrix_error(lambda x: x[..., 0], sl.bistable_nd(8), a, b, n_curves=0), ValueError,
     "n_curves must be a positive integer"),
    (lambda a, b: sl.separatrix_error(lambda x: x[..., 0] * float("nan"), sl.bistable_nd(8), a, b, n_curves=4),
     FloatingPointError, "psi is NaN at"),
    (lambda a, b: sl.separatrix_point(sl.bistable_nd(8), torch.full((8,), float("inf")), b), ValueError,
     "a has NaN or inf"),
    (lambda a, b: sl.find_saddle(sl.bistable_nd(8), torch.zeros(3), a, b), ValueError, "point has dimension 3"),
])
def test_bad_points_and_counts_are_named(call, error, message):
    a, b = torch.tensor(sl.bistable_nd(8).attractors)
    with pytest.raises(error, match=message):
        call(a, b)


def test_basin_agreement_refuses_what_it_cannot_score():
    x = torch.zeros(5, 2)
    with pytest.raises(ValueError, match="one label per point"):
        sl.basin_agreement(lambda z: z[..., 0], x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="no point is labelled"):
        sl.basin_agreement(lambda z: z[..., 0], x, torch.full((5,), -1))
    with pytest.raises(FloatingPointError, match="psi is NaN at 5 of 5 points"):
        sl.basin_agreement(lambda z: z[..., 0] / 0 * 0, x, torch.zeros(5, dtype=torch.long))
    assert sl.basin_agreement(lambda z: z[..., 0] - 0.5, torch.tensor([[0.0, 0], [1, 0]]), torch.tensor([0, 1])) == 1.0


def test_segment_clouds_takes_integer_coordinates():
    x = sl.segment_clouds([0, 0], [2, 0], 100)
    assert x.dtype == torch.float32 and x.shape == (100, 2) and torch.isfinite(x).all()
