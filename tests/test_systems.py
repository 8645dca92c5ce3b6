import pytest
import torch

import seplib as sl


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fields_match_their_equations(dtype):
    x = torch.randn(5, 7, 2, dtype=dtype)
    px, py = x[..., 0], x[..., 1]
    torch.testing.assert_close(sl.bistable_2d()(x), torch.stack((px - px**3, -py), -1))
    torch.testing.assert_close(sl.duffing(0.5)(x), torch.stack((py, -0.5 * py + px - px**3), -1))
    x1 = torch.randn(4, 1, dtype=dtype)
    torch.testing.assert_close(sl.bistable_1d()(x1), x1 - x1**3)
    assert sl.duffing()(x).dtype == dtype and sl.duffing()(x).shape == x.shape


ALL = [sl.bistable_1d(), sl.bistable_2d(), sl.duffing(), sl.curved_bistable(), sl.mutual_inhibition()]


@pytest.mark.parametrize("system", ALL, ids=lambda s: s.name)
def test_fields_vanish_at_their_fixed_points(system):
    points = torch.tensor(system.attractors + [system.saddle], dtype=torch.float64)
    assert system(points).abs().max() < 1e-12
    assert system.dim == points.shape[-1]


def test_analytic_1d_kef_solves_the_eigen_equation():
    x = torch.linspace(-0.95, 0.95, 101, dtype=torch.float64, requires_grad=True)
    phi = sl.analytic_kef_1d(x)
    (dphi,) = torch.autograd.grad(phi.sum(), x)
    assert (dphi * (x - x**3) - phi).abs().max() < 1e-9


def test_duffing_refuses_non_positive_damping():
    with pytest.raises(ValueError, match="delta"):
        sl.duffing(0.0)


@pytest.mark.parametrize("system", [s for s in ALL if s.separatrix is not None and s.dim == 2],
                         ids=lambda s: s.name)
def test_known_separatrix_splits_the_basins(system):
    # Points on either side of the stated separatrix must flow to different attractors.
    gen = torch.Generator().manual_seed(0)
    x = 4 * torch.rand(400, 2, generator=gen) - 2
    x = x[system.separatrix(x).abs() > 0.05]          # off the boundary, where labels are sharp
    labels = sl.basin_labels(system, x, torch.tensor(system.attractors))
    side = system.separatrix(x) > 0
    assert (labels >= 0).all()
    agree = (side == (labels == 1)).float().mean().item()
    assert max(agree, 1 - agree) == 1.0


def test_bistable_systems_refuse_monostable_parameters():
    with pytest.raises(ValueError, match="w must be > 1"):
        sl.mutual_inhibition(1.0)


@pytest.mark.parametrize("dim", [2, 8, 32])
def test_bistable_nd_fixed_points_and_exact_basins(dim):
    system = sl.bistable_nd(dim, seed=1)
    a, b = torch.tensor(system.attractors), torch.tensor(system.attractors)[1]
    a = a[0]
    for p in (a, b, torch.zeros(dim)):
        assert system(p).norm() < 1e-6
    assert system.separatrix_value(b) > 0 > system.separatrix_value(a)
    # the sign of separatrix_value is the basin that integration finds
    x = sl.segment_clouds(a, b, 200, seed=3)
    value = system.separatrix_value(x)
    keep = value.abs() > 1e-2
    labels = sl.basin_labels(system, x[keep], torch.stack((a, b)))
    assert torch.equal(labels, (value[keep] > 0).long())
    # the saddle: one unstable direction, rate 1; stable rates within (0.5, 2)
    rates = torch.linalg.eigvals(sl.jacobian(system, torch.zeros(dim, dtype=torch.float64))).real
    assert (rates > 0).sum() == 1 and abs(rates.max() - 1) < 1e-6
    assert ((-rates[rates < 0] >= 0.5 - 1e-9) & (-rates[rates < 0] <= 2 + 1e-9)).all()


def test_bistable_nd_is_seeded_and_curved():
    a, b = sl.bistable_nd(16, seed=0), sl.bistable_nd(16, seed=0)
    x = torch.randn(5, 16)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), sl.bistable_nd(16, seed=1)(x))
    e0 = torch.tensor(a.attractors[1])
    side = torch.randn(16)
    side = side - (side @ e0) * e0   # perpendicular to the line between the attractors
    # the separatrix bends towards +e0: at the saddle plus a sideways step, u < 0
    assert a.separatrix_value(side / side.norm()) < 0
    with pytest.raises(ValueError, match="dim must be an integer >= 2"):
        sl.bistable_nd(1)
    with pytest.raises(ValueError, match="has no closed form"):
        sl.duffing().separatrix_value(x[:, :2])


def test_a_system_names_its_dimension_when_given_other_points():
    system = sl.bistable_nd(8)
    with pytest.raises(ValueError, match=r"8-dimensional: give points as a Tensor\[..., 8\], got \(3, 5\)"):
        system(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="8-dimensional"):
        system.separatrix_value(torch.zeros(5))
    # a 1-D system is elementwise: chapter 3 evaluates it on a plain vector of states
    assert sl.bistable_1d()(torch.tensor([0.5, 2.0])).shape == (2,)


@pytest.mark.parametrize("dim", [2, 16])
def test_saddle_nd_fixed_points_and_exact_basins(dim):
    system = sl.saddle_nd(dim, seed=1, beta=0.4, shift=1.5)
    a, b = (torch.tensor(p) for p in system.attractors)
    saddle = torch.tensor(system.saddle)
    for p in (a, b, saddle):
        assert system(p).norm() < 1e-6
    assert abs(saddle.norm() - 1.5) < 1e-6                       # away from the origin
    assert abs((saddle - a).norm() / (b - a).norm() - 0.4 / 1.4) < 1e-6   # off the middle
    assert system.separatrix_value(b) > 0 > system.separatrix_value(a)
    # the sign of separatrix_value is the basin that integration finds
    x = sl.segment_clouds(a, b, 300, seed=3)
    value = system.separatrix_value(x)
    keep = value.abs() > 1e-2
    labels = sl.basin_labels(system, x[keep], torch.stack((a, b)))
    assert torch.equal(labels, (value[keep] > 0).long())
    # the saddle: one unstable direction, rate 1; the attractors contract at different rates
    rates = torch.linalg.eigvals(sl.jacobian(system, saddle.double())).real
    assert (rates > 0).sum() == 1 and abs(rates.max() - 1) < 1e-6
    slowest = [-torch.linalg.eigvals(sl.jacobian(system, p.double())).real.max() for p in (a, b)]
    assert slowest[0] != slowest[1]


def test_saddle_nd_bends_both_ways():
    system = sl.saddle_nd(16, seed=0, flip=0.5)
    params = system.params
    assert params["flip"] == 0.5
    a, b = (torch.tensor(p, dtype=torch.float64) for p in system.attractors)
    saddle = torch.tensor(system.saddle, dtype=torch.float64)
    e0 = (b - a) / (b - a).norm()
    # steps sideways from the saddle, perpendicular to the segment: along some directions the
    # separatrix bends towards b (u < 0 there), along others towards a (u > 0)
    gen = torch.Generator().manual_seed(0)
    sides = torch.randn(400, 16, generator=gen, dtype=torch.float64)
    sides = sides - (sides @ e0)[:, None] * e0
    sides = 1.5 * sides / sides.norm(dim=-1, keepdim=True)
    u = system.separatrix_value(saddle + sides)
    assert (u > 0.05).any() and (u < -0.05).any()
    bowl = sl.saddle_nd(16, seed=0, flip=0.0).separatrix_value(saddle + sides)
    assert (bowl < 0).all()          # flip 0: every direction bends the same way, as bistable_nd's
    for bad, said in ((dict(flip=1.5), "flip must be a fraction"), (dict(beta=0.0), "beta must be > 0"),
                      (dict(shift=float("nan")), "shift must be a finite number")):
        with pytest.raises(ValueError, match=said):
            sl.saddle_nd(4, **bad)
