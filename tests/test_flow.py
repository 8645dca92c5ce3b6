import pytest
import torch

import seplib as sl


@pytest.mark.parametrize("system", [sl.bistable_1d(), sl.bistable_2d(), sl.duffing()])
def test_attractors_of_the_analytic_systems(system):
    found = sl.find_attractors(system, system.dim, n_starts=64)
    torch.testing.assert_close(found, torch.tensor(system.attractors), atol=1e-3, rtol=0)


@pytest.mark.parametrize("dim", [8, 128])
def test_attractors_of_a_curved_separatrix_in_many_dimensions(dim):
    # starts of norm 2 all lie on one side of bistable_nd's bent separatrix at d = 128
    system = sl.bistable_nd(dim, seed=1)
    found = sl.find_attractors(system, dim)
    expected = torch.tensor(system.attractors)
    assert len(found) == 2
    assert torch.cdist(found, expected).min(dim=0).values.max() < 1e-2


def test_one_attractor_is_returned_with_a_warning_and_none_is_an_error():
    # a single attractor would break `a, b = find_attractors(...)` with Python's unpacking error
    with pytest.warns(RuntimeWarning, match="found one attractor, at .* pass more n_starts"):
        found = sl.find_attractors(lambda x: -x, 2, n_starts=64)
    assert found.shape == (1, 2) and found.abs().max() < 1e-3
    # one start cannot count as an attractor (a saddle can catch one): named, not torch.stack's
    with pytest.raises(RuntimeError, match="reached by 2 or more of the 1 starts .* pass more n_starts"):
        sl.find_attractors(sl.bistable_2d(), 2, n_starts=1)


def test_attractors_come_in_the_same_order_every_time():
    a = sl.find_attractors(sl.duffing(), 2, n_starts=64, seed=1)
    b = sl.find_attractors(sl.duffing(), 2, n_starts=64, seed=2)
    assert torch.allclose(a, b, atol=1e-3)


def test_bisection_finds_x_equal_0_for_the_2d_bistable_system():
    p = sl.separatrix_point(sl.bistable_2d(), [-1.0, 0.3], [1.0, -0.2])
    assert abs(p[0]) < 1e-3
    # two points of one basin have no separatrix between them: refused, not the end returned
    with pytest.raises(ValueError, match=r"\(1 to a, 0 to b\).*a and b lie in one basin"):
        sl.separatrix_point(sl.bistable_2d(), [-1.0, 0.0], [-0.5, 0.0])


def test_saddle_and_its_eigenvalues():
    duffing = sl.duffing()
    p = sl.separatrix_point(duffing, [-1.0, 0.0], [1.0, 0.0])
    saddle, eig = sl.find_saddle(duffing, p, [-1.0, 0.0], [1.0, 0.0])
    assert saddle.norm() < 1e-4
    expected = torch.tensor([(-1 - 5**0.5) / 2, (-1 + 5**0.5) / 2])  # roots of s^2 + s - 1
    torch.testing.assert_close(eig.real.sort().values, expected, atol=1e-4, rtol=0)
    # from a point deep in one basin Newton's method ends at the attractor: refused, not returned
    with pytest.raises(RuntimeError, match="not a saddle on the separatrix: its Jacobian has 0 unstable"):
        sl.find_saddle(duffing, torch.tensor([50.0, 50.0]), [-1.0, 0.0], [1.0, 0.0])


def test_basin_labels_and_unconverged_points():
    system = sl.bistable_2d()
    x = torch.tensor([[-0.5, 1.0], [0.7, -2.0], [0.0, 1.0]])  # the last lies on the separatrix
    labels = sl.basin_labels(system, x, torch.tensor(system.attractors))
    assert labels.tolist() == [0, 1, -1]


def test_basin_labels_leave_out_points_within_margin_of_the_separatrix():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    # 1e-7 off the separatrix x = 0 (as a float grid column can be): rounding alone picks a basin
    x = torch.tensor([[1e-7, 0.5], [-1e-7, -1.0], [0.01, 2.0], [-0.01, 0.0]])
    assert sl.basin_labels(system, x, attractors, margin=0).tolist() == [1, 0, 1, 0]
    assert sl.basin_labels(system, x, attractors).tolist() == [-1, -1, 1, 0]
    assert sl.basin_labels(system, x, attractors, margin=0.02).tolist() == [-1, -1, -1, -1]


def test_saddle_normal_is_the_separatrix_normal_at_the_saddle():
    # bistable_nd's separatrix z_0 = c(z) is flat at the saddle 0: its normal is the first
    # column of the rotation, attractors[1] itself
    system = sl.bistable_nd(8, seed=3)
    rate, w = sl.saddle_normal(system, torch.zeros(8))
    assert abs(rate - 1.0) < 1e-4
    assert abs(abs(w @ torch.tensor(system.attractors[1])) - 1) < 1e-5
    # the Duffing saddle: unstable rate (sqrt(5) - 1) / 2, w orthogonal to the stable direction
    rate, w = sl.saddle_normal(sl.duffing(), [0.0, 0.0])
    assert abs(rate - (5**0.5 - 1) / 2) < 1e-5
    stable = torch.tensor([1.0, (-1 - 5**0.5) / 2])   # J = [[0, 1], [1, -1]]: J v = s v
    assert abs(w @ stable) < 1e-5
    # an attractor, and a source, are not saddles: refused, not a normal of nothing
    with pytest.raises(ValueError, match="Jacobian there has 0 unstable directions"):
        sl.saddle_normal(sl.duffing(), [1.0, 0.0])
    with pytest.raises(ValueError, match="Jacobian there has 2 unstable directions"):
        sl.saddle_normal(lambda x: x, [0.0, 0.0])


def test_the_linearisation_is_the_saddles_hyperplane_written_like_psi():
    system = sl.bistable_nd(8, seed=3)
    lin = sl.linearisation(system, torch.zeros(8))
    a, b = torch.tensor(system.attractors)
    # the signed distance from the hyperplane x . w = 0, w = +-attractors[1]: +-1 at a and b
    values = lin(torch.stack((a, b)))
    assert values.shape == (2,) and torch.allclose(values.abs(), torch.ones(2), atol=1e-5)
    assert values[0] * values[1] < 0 and abs(lin.rate - 1.0) < 1e-4
    # whatever takes psi takes it: the nearest point of its zero set is the projection
    x0 = a + 0.3 * torch.randn(8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sl.smallest_flip(lin, x0), -lin(x0) * lin.normal, atol=1e-5, rtol=0)
    assert sl.basin_agreement(lin, torch.stack((a, b)), torch.tensor([0, 1])) == 1.0
    with pytest.raises(ValueError, match="x must be states, a tensor"):
        lin(torch.zeros(3))
    with pytest.raises(ValueError, match="0 unstable directions"):   # saddle_normal's check
        sl.linearisation(system, a)


def test_saddle_normal_refuses_a_nan_jacobian():
    with pytest.raises(FloatingPointError, match="saddle_normal"):
        sl.saddle_normal(lambda x: x * float("nan"), [0.0, 0.0])


def _memory_lines(x):
    # bistable in x, decaying in y, neutral in z: each memory is a line of fixed points along z
    return torch.stack((x[..., 0] - x[..., 0] ** 3, -x[..., 1], torch.zeros_like(x[..., 2])), dim=-1)


def test_memories_on_slow_manifolds_are_merged_and_labelled():
    ends = sl.find_attractors(_memory_lines, 3, n_starts=64, spread=0.5)
    assert len(ends) > 2                      # the ends stop anywhere along each line
    memories = sl.find_attractors(_memory_lines, 3, n_starts=64, spread=0.5, merge=1.5)
    assert len(memories) == 2
    assert memories[:, 0].sign().tolist() == [-1.0, 1.0]
    x = torch.tensor([[0.5, 0.2, 1.0], [-0.3, -0.1, -0.8], [0.0, 0.3, 1.0]])
    a, b = torch.tensor([-1.0, 0.0, 0.0]), torch.tensor([1.0, 0.0, 0.0])
    # 1 and 0.8 from the nearest memory point: never within tol
    assert sl.basin_labels(_memory_lines, x, torch.stack((a, b))).tolist() == [-1, -1, -1]
    labels = sl.basin_labels(_memory_lines, x, torch.stack((a, b)), relative_tol=0.5)
    assert labels.tolist() == [1, 0, -1]      # the third starts on the separatrix x = 0
    with pytest.raises(ValueError, match="relative_tol"):
        sl.basin_labels(_memory_lines, x, torch.stack((a, b)), relative_tol=1.5)
    with pytest.raises(ValueError, match="merge"):
        sl.find_attractors(_memory_lines, 3, merge=0.0)


def test_find_saddles_lands_on_the_saddle_where_the_sampled_rate_is_too_fast():
    # x' = x - x^3 + 0.2 (saddle at the middle root x0 = -0.2091, rate 1 - 3 x0^2), y' = -y; and
    # beside it, far from the saddle, a stripe where y' pulls states apart at up to rate 2
    x0 = -0.20905973
    bump = lambda x: 3.0 * torch.exp(-2 * (x[..., 0] - 2.4) ** 2) * x[..., 1]  # noqa: E731

    def field(x):
        return torch.stack((x[..., 0] - x[..., 0] ** 3 + 0.2, -x[..., 1] + bump(x)), dim=-1)

    x = sl.MultiscaleGaussian(2).sample(256, torch.Generator().manual_seed(0)).reshape(-1, 2)
    saddles, rates = sl.find_saddles(field, x)
    assert saddles.shape == (1, 2) and rates.shape == (1,)
    assert torch.allclose(saddles[0], torch.tensor([x0, 0.0]), atol=1e-4)
    assert abs(rates[0] - (1 - 3 * x0**2)) < 1e-3
    assert sl.expansion_rate(field, x) > 1.2   # the old estimate: the stripe, not the saddle (0.87)


def test_find_saddles_finds_none_where_there_is_no_saddle():
    x = torch.randn(300, 2)
    saddles, rates = sl.find_saddles(lambda x: x, x)    # a source: two unstable directions
    assert saddles.shape == (0, 2) and rates.shape == (0,)


def test_find_saddles_refuses_nan_before_linear_algebra():
    with pytest.raises(FloatingPointError, match="find_saddles"):
        sl.find_saddles(lambda x: x * torch.sqrt(x[..., :1] - 100), torch.randn(50, 2))


def test_integrate_names_a_step_size_underflow_instead_of_asserting():
    x0 = torch.tensor([[1.5, 0.0]])
    with pytest.raises(FloatingPointError, match="integrating the field failed .*underflow in dt"):
        sl.integrate(lambda x: x**3, x0, [0.0, 5.0])   # x(t) = 1 / sqrt(1/x0^2 - 2t) blows up at t = 0.22
    with pytest.raises(FloatingPointError, match="too stiff along a trajectory"):
        sl.basin_labels(lambda x: x**3, x0, torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))


@pytest.mark.parametrize("call, message", [
    (lambda f, ab: sl.integrate(f, torch.zeros(2), [0.0, 1.0, 0.5]), "strictly increasing or decreasing"),
    (lambda f, ab: sl.integrate(f, torch.zeros(2), [0.0, float("nan")]), "at least two finite times"),
    (lambda f, ab: sl.integrate(f, torch.full((2,), float("nan")), [0.0, 1.0]), "x0 has NaN or inf entries at 1 of 1"),
    (lambda f, ab: sl.basin_labels(f, torch.zeros(3, 2), ab[0]), r"attractors must be a \[k, 2\] tensor"),
    (lambda f, ab: sl.basin_labels(f, torch.full((3, 2), float("inf")), ab), "x has NaN or inf entries at 3 of 3"),
    (lambda f, ab: sl.basin_labels(f, torch.zeros(3, 2), ab, T=-1.0), "T must be a finite time > 0"),
    (lambda f, ab: sl.basin_labels(f, torch.zeros(3, 2), ab, tol=0.0), "tol must be a finite distance > 0"),
    (lambda f, ab: sl.find_attractors(f, 0), "dim must be a positive integer"),
    (lambda f, ab: sl.find_attractors(f, 2, n_starts=0), "n_starts must be a positive integer"),
    (lambda f, ab: sl.expansion_rate(f, torch.zeros(3, 2), q=2.0), r"q must lie in \[0, 1\] \(a quantile\)"),
])
def test_bad_times_states_and_counts_are_named_before_integrating(call, message):
    field = sl.bistable_2d()
    with pytest.raises(ValueError, match=message):
        call(field, torch.tensor(field.attractors))


def test_integrate_runs_backwards_in_time():
    # x' = x - x^3 backwards from 0.5 moves towards the repeller at 0
    x = sl.integrate(sl.bistable_1d(), torch.tensor([0.5]), [0.0, -1.0])
    assert 0 < x[-1].item() < 0.5
