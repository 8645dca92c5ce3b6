import math

import pytest
import torch

import seplib as sl
from seplib.perturb import brute_force_flip, flips, smallest_flip


def test_smallest_flip_reaches_the_nearest_point_of_a_curved_zero_set():
    system = sl.curved_bistable(a=0.5)                # separatrix x = 0.5 y^2
    psi = system.separatrix_value
    x0 = torch.tensor([-0.3, 1.6])
    delta = smallest_flip(psi, x0)
    # the nearest point of the parabola, by a dense search along it
    y = torch.linspace(-3, 3, 600001)
    exact = ((torch.stack((0.5 * y**2, y), -1) - x0).norm(dim=-1)).min()
    assert abs(psi(x0 + delta)) < 1e-4
    assert abs(delta.norm() - exact) < 1e-3


def test_a_mask_limits_the_coordinates_and_its_flip_is_no_smaller():
    system = sl.bistable_nd(6, seed=0, curvature=0.0)   # flat: the separatrix is a hyperplane
    psi = system.separatrix_value
    a = torch.tensor(system.attractors[0])
    x0 = 0.5 * a                                       # halfway from the saddle to attractor a
    free = smallest_flip(psi, x0)
    assert abs(free.norm() - 0.5) < 1e-3                # |x0 - hyperplane| = 0.5 |a| = 0.5
    mask = torch.tensor([True, True, False, False, False, False])
    masked = smallest_flip(psi, x0, mask=mask)
    assert (masked[~mask] == 0).all() and abs(psi(x0 + masked)) < 1e-4
    assert masked.norm() >= free.norm() - 1e-4


def test_clear_errors_for_bad_input():
    psi = sl.bistable_2d().separatrix_value
    with pytest.raises(ValueError, match="mask has no True entry"):
        smallest_flip(psi, torch.tensor([-0.5, 0.0]), mask=torch.tensor([False, False]))
    with pytest.raises(ValueError, match="x0 must be one state"):
        smallest_flip(psi, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="psi has no zero near x0"):   # psi = x does not depend on y
        smallest_flip(psi, torch.tensor([-0.5, 0.0]), mask=torch.tensor([False, True]))
    with pytest.raises(ValueError, match="psi has no zero near x0"):
        smallest_flip(lambda x: 1 + x[..., 0] ** 2, torch.tensor([-0.5, 0.0]))


def test_a_trained_kefs_flip_is_checked_by_simulation_and_beats_brute_force():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    kef = sl.fit_kef(system, *torch.tensor(system.attractors), recipe=sl.Recipe.low_dim(), progress=False,
                     device="cpu")
    x0 = torch.tensor([-0.6, 0.8])
    delta = smallest_flip(kef, x0)
    assert abs(delta.norm() - 0.6) < 0.02 and flips(system, x0, delta, attractors)
    assert not flips(system, x0, 0.9 * delta, attractors)     # short of the separatrix
    assert sl.flip_verdict(system, x0, 0.9 * delta, attractors) == "short"
    assert sl.flip_verdict(system, x0, 1.5 * delta, attractors) == "past"
    assert sl.flip_verdict(system, x0, delta, attractors) == "flips"
    best, n = brute_force_flip(system, x0, attractors, n_directions=32)
    assert n > 32 and best.norm() >= 0.6 - 1e-3 and flips(system, x0, best, attractors)
    assert delta.norm() <= best.norm() + 0.02
    line, n = brute_force_flip(system, x0, attractors, n_directions=0)   # the line to the other attractor
    other = attractors[1]                                                # x0 lies in (-1, 0)'s basin
    assert n == 2 + 20 and flips(system, x0, line, attractors)
    assert torch.cosine_similarity(line, other - x0, dim=0) > 1 - 1e-5 and best.norm() <= line.norm() + 1e-5


def test_steps_that_cycle_where_psi_saturates_are_retried_with_less_damping():
    # a squashed-like psi: from deep in the flat region every start's damped steps (0.5) cycle
    def psi(x):
        return torch.tanh(3 * x[..., 0]) - 0.5

    delta = sl.smallest_flip(psi, torch.tensor([-1.5, 0.3]))
    expected = torch.tensor([1.5 + math.atanh(0.5) / 3, 0.0])
    torch.testing.assert_close(delta, expected, atol=1e-4, rtol=0)


def test_where_psi_is_flat_the_starts_stay_within_the_distance_to_the_kefs_centre():
    # psi saturated at x0 (1 in float32) has no gradient there: the linear distance to psi = 0 is
    # unbounded, every start landed on a plateau, and no zero was found. A fitted KEF's zero set
    # runs through its samples' centre (mean_), which bounds the distance and is a start too.
    class Ridges:
        dim = 2

        def __init__(self, centre):
            self.mean_ = centre

        def __call__(self, x):   # zero sets at x = k pi, flat in between
            return torch.tanh(20 * torch.sin(x[..., 0]))

    x0 = torch.tensor([1.2, 0.3])
    assert Ridges(None)(x0).item() == 1.0
    with pytest.raises(ValueError, match="psi has no zero near x0"):
        smallest_flip(Ridges(None), x0)
    delta = smallest_flip(Ridges(torch.zeros(2)), x0)
    torch.testing.assert_close(delta, torch.tensor([-1.2, 0.0]), atol=1e-4, rtol=0)


def test_refine_flip_corrects_a_push_that_falls_short_or_goes_past():
    system = sl.bistable_2d()                       # separatrix x = 0
    attractors = torch.tensor(system.attractors)
    x0 = torch.tensor([-0.6, 0.8])
    for wrong in (0.1, -0.2):                       # psi's zero set at x = -0.1, then at x = 0.2
        delta = smallest_flip(lambda x: x[..., 0] + wrong, x0)
        assert sl.flip_verdict(system, x0, delta, attractors) == ("short" if wrong > 0 else "past")
        refined, n = sl.refine_flip(system, x0, delta, attractors)
        assert n == 14 and abs(refined[0] - 0.6) < 2e-3 and abs(refined[1]) < 1e-6
        assert sl.flip_verdict(system, x0, refined, attractors) == "flips"


def test_refine_flip_says_when_the_direction_never_flips_and_refuses_bad_input():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    x0 = torch.tensor([-0.6, 0.8])
    assert sl.refine_flip(system, x0, torch.tensor([0.0, -0.5]), attractors) == (None, 2)  # along y: same basin
    with pytest.raises(ValueError, match="finite nonzero push"):
        sl.refine_flip(system, x0, torch.zeros(2), attractors)
    with pytest.raises(ValueError, match="finite nonzero push"):
        sl.refine_flip(system, x0, torch.tensor([float("nan"), 0.0]), attractors)
    with pytest.raises(ValueError, match="reach must be > 1"):
        sl.refine_flip(system, x0, torch.tensor([0.5, 0.0]), attractors, reach=0.5)


def test_flip_verdict_refuses_non_finite_states_before_integrating():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    x0 = torch.tensor([-0.6, 0.8])
    with pytest.raises(ValueError, match="finite push"):
        sl.flip_verdict(system, x0, torch.tensor([float("inf"), 0.0]), attractors)
    with pytest.raises(ValueError, match="finite push of shape"):
        sl.flip_verdict(system, x0, torch.zeros(3), attractors)
    with pytest.raises(ValueError, match="x0 has NaN"):
        sl.flips(system, torch.tensor([float("nan"), 0.8]), torch.tensor([0.5, 0.0]), attractors)
    assert sl.flip_verdict(system, x0, torch.zeros(2), attractors) == "short"   # no push: x0's basin


@pytest.mark.parametrize("kw, message", [({"starts": 0}, "starts must be a positive integer"),
                                         ({"steps": 0}, "steps must be a positive integer"),
                                         ({"damping": 0.0}, r"damping must lie in \(0, 1\]")])
def test_smallest_flip_names_bad_solver_settings(kw, message):
    with pytest.raises(ValueError, match=message):
        sl.smallest_flip(lambda x: x[..., 0], torch.tensor([0.5, 0.0]), **kw)


def test_smallest_flip_names_a_nan_psi_at_x0():
    # a NaN psi used to run every start and report that psi has no zero near x0
    with pytest.raises(FloatingPointError, match="psi or its gradient at x0 is NaN"):
        smallest_flip(lambda x: x[..., 0] * float("nan"), torch.zeros(2))
