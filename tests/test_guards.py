"""Fields real users bring, and input that could crash native code.

NaN handed to LAPACK can kill the interpreter (MKL's DGEBAL on some CPUs), so each case that
could reach it runs in a child process: a segfault fails that one test, not the whole run."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import seplib as sl
import seplib.plots
from seplib.flow import jacobian


def run_child(code):
    """Run ``code`` in a fresh interpreter; return (exit code, stdout + stderr)."""
    done = subprocess.run([sys.executable, "-c", "import seplib as sl, torch\n" + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def assert_refused(code, error, *words):
    """The child raised ``error`` whose message has every one of ``words``: it did not crash."""
    rc, out = run_child(code)
    assert rc == 1, f"exit code {rc} (negative: killed by a signal, a native crash):\n{out}"
    message = out.strip().splitlines()[-1]
    assert message.startswith(error), out
    for word in words:
        assert word in message, message


def test_a_nan_jacobian_never_reaches_eigvals():
    assert_refused("""
        x = torch.randn(64, 2)
        sl.expansion_rate(lambda x: x * torch.sqrt(x[..., :1] - 100), x)   # NaN for x < 100
    """, "FloatingPointError", "Jacobian is NaN", "at 64 of 64 points", "torch.linalg.eigvals")


def test_the_automatic_eigenvalue_refuses_a_nan_jacobian():
    # finite values (nan_to_num), a NaN gradient: sqrt's derivative below 0 is NaN
    assert_refused("""
        sl.fit_kef(lambda x: x - x**3 + 0 * torch.sqrt(x - 1e3).nan_to_num(), [-1.0, -1.0], [1.0, 1.0],
                   epochs=10, recipe=sl.Recipe.low_dim(), progress=False)
    """, "FloatingPointError", "NaN", "eigenvalue=")


def test_find_saddle_refuses_a_nan_jacobian_before_eigvals():
    # finite everywhere, but the gradient of sqrt|x| at the saddle x = 0 is inf, and 0 * inf NaN
    assert_refused("""
        def f(x):
            return sl.bistable_2d()(x) + 0 * x.abs().sqrt()
        sl.find_saddle(f, torch.zeros(2), [-1.0, 0.0], [1.0, 0.0])
    """, "FloatingPointError", "NaN", "find_saddle", "first at x = [0, 0]")


def test_a_field_that_is_nan_everywhere_is_named_before_training():
    assert_refused("""
        sl.fit_kef(lambda x: torch.full_like(x, float("nan")), [-1.0, 0.0], [1.0, 0.0], progress=False)
    """, "FloatingPointError", "field's value is NaN", "training did not start")


def test_a_covariance_with_nan_is_refused_before_cholesky():
    assert_refused("""
        sl.MultiscaleGaussian(2, cov=[[1.0, float("nan")], [float("nan"), 1.0]])
    """, "ValueError", "cov has NaN")


def bistable_numpy(x):
    """The 2D bistable system written in numpy, for [N, 2] arrays only."""
    return np.stack((x[:, 0] - x[:, 0] ** 3, -x[:, 1]), axis=1)


def numpy_field(x):
    return torch.from_numpy(bistable_numpy(x.detach().cpu().numpy()))


def test_jacobian_by_central_differences_where_autograd_cannot_see():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = jacobian(sl.bistable_2d(), x)
    assert exact.shape == (50, 2, 2)
    torch.testing.assert_close(exact[:, 0, 0], 1 - 3 * x[:, 0] ** 2)
    torch.testing.assert_close(jacobian(numpy_field, x), exact, atol=1e-8, rtol=1e-8)
    # float32: the step eps^(1/3) leaves an error of order eps^(2/3)
    torch.testing.assert_close(jacobian(numpy_field, x.float()), exact.float(), atol=1e-3, rtol=1e-3)
    # and a field that calls x.numpy() without detach (refused by torch on a tensor needing grad)
    raw = lambda x: torch.from_numpy(bistable_numpy(x.numpy()))  # noqa: E731
    torch.testing.assert_close(jacobian(raw, x), exact, atol=1e-8, rtol=1e-8)
    # a single point [d] gives [d, d]
    assert jacobian(numpy_field, x[0]).shape == (2, 2)


def test_a_numpy_field_trains_with_all_defaults_and_splits_the_basins():
    system = sl.bistable_2d()
    # fixed points: an unseeded draw depended on what earlier tests took from torch's global
    # generator, and about one draw in ten had no point near enough x = 0 (0.985)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    assert abs(sl.expansion_rate(numpy_field, x) - 1.0) < 0.01
    kef = sl.fit_kef(numpy_field, *torch.tensor(system.attractors), recipe=sl.Recipe.low_dim(), progress=False,
                     device="cpu")
    assert abs(kef.eigenvalue - 0.4) < 0.01
    x = sl.MultiscaleGaussian(2).sample(500, torch.Generator().manual_seed(7)).reshape(-1, 2)
    labels = sl.basin_labels(system, x, torch.tensor(system.attractors))
    assert sl.basin_agreement(kef, x, labels) >= 0.99
    # the ground truth by integration takes the numpy field too
    assert torch.equal(sl.basin_labels(numpy_field, x[:50], torch.tensor(system.attractors)), labels[:50])


@pytest.mark.parametrize("returns, error, message", [
    (lambda x: x[..., :1], ValueError, r"shape \(3, 1\) for input of shape \(3, 2\)"),
    (lambda x: x.tolist(), TypeError, "returned a list"),
    (lambda x: x.to(torch.complex64), TypeError, "complex64 values"),
])
def test_a_field_returning_the_wrong_thing_is_refused_before_training(returns, error, message):
    with pytest.raises(error, match=message):
        sl.fit_kef(returns, A, B, epochs=10, recipe=sl.Recipe.low_dim(), progress=False, device="cpu")


def test_another_dtype_is_converted():
    field = sl.bistable_2d()
    kef = sl.fit_kef(lambda x: field(x.double()), A, B, epochs=60, recipe=sl.Recipe.low_dim(), progress=False,
                     device="cpu")
    assert kef(torch.zeros(3, 2)).dtype == torch.float32
    ends = sl.integrate(lambda x: field(x).numpy().astype(np.float64), torch.ones(4, 2), [0.0, 1.0])
    assert ends.dtype == torch.float32 and torch.isfinite(ends).all()


def test_messages_print_denormals_as_zero_and_keep_nan_and_inf():
    from seplib._guards import _short
    x = torch.tensor([-1.401e-45, 0.5, float("nan"), float("inf"), 2e-31, 1e-29, 7.0])
    assert _short(x) == "[0, 0.5, nan, inf, 0, 1e-29, ...]"


@pytest.mark.parametrize("values, kind", [
    ([1.0, float("nan"), 2.0], "NaN at 1 of 3"),
    ([1.0, float("inf"), -float("inf")], "inf at 2 of 3"),   # their sum is NaN
    ([3e38, 3e38, 3e38], None),                 # finite, though their sum overflows
    ([], None),
])
def test_finite_or_raise_sees_every_non_finite_entry_and_only_those(values, kind):
    from seplib._guards import finite_or_raise
    x = torch.tensor(values, dtype=torch.float32)
    if kind is None:
        finite_or_raise(x, "x", "nothing done", "fix it")
        return
    with pytest.raises(FloatingPointError, match=f"x is {kind} points"):
        finite_or_raise(x, "x", "nothing done", "fix it", points=torch.arange(3.0)[:, None])


SYSTEM = sl.bistable_2d()
A, B = (torch.tensor(p) for p in SYSTEM.attractors)
ENDS = torch.stack((A, B))


@pytest.mark.parametrize("call, message", [
    (lambda: sl.integrate(SYSTEM.f, "x", [0.0, 1.0]), "x0 must be states"),
    (lambda: sl.integrate(SYSTEM.f, torch.zeros(3, 2), 5.0), r"t must be at least two finite times.*linspace"),
    (lambda: sl.basin_labels(SYSTEM.f, None, ENDS), "x must be states"),
    (lambda: sl.jacobian(SYSTEM.f, "x"), "x must be states"),
    (lambda: sl.expansion_rate(SYSTEM.f, torch.zeros(0, 2)), "x holds no points"),
    (lambda: sl.find_saddles(SYSTEM.f, torch.zeros(8, 2), starts=0), "starts must be a positive integer"),
    (lambda: sl.saddle_normal(SYSTEM.f, None), "saddle must be a point"),
    (lambda: sl.trajectory_pairs(SYSTEM.f, torch.zeros(2), 0.5), r"x0 must be a tensor \[N, d\]"),
    (lambda: sl.trajectory_pairs(SYSTEM.f, torch.zeros(4, 2), 0.5, n_times=-1), "n_times must be a positive"),
    (lambda: sl.MultiscaleGaussian(2).sample(-3), "n must be a positive integer"),
    (lambda: sl.brute_force_flip(SYSTEM.f, A, ENDS, n_directions=-1), "n_directions must be an integer >= 0"),
    (lambda: sl.brute_force_flip(SYSTEM.f, A, ENDS, n_directions=0, mask=torch.tensor([True, False])),
     "there is no line here"),
    (lambda: sl.brute_force_flip(SYSTEM.f, A, torch.tensor(1.0)), r"attractors must be a \[k, 2\] tensor"),
    (lambda: sl.brute_force_flip(SYSTEM.f, A, torch.zeros(2, 3)), r"attractors must be a \[k, 2\] tensor"),
    (lambda: sl.grid((0.0, float("nan")), (1.0, 1.0)), "lo must be a corner"),
    (lambda: sl.grid((0.0, 1j), (1.0, 1.0)), "lo holds torch.complex64 values"),
    (lambda: sl.integrate(SYSTEM.f, torch.zeros(3, 2), [0.0, 1.0], rtol="x"), "rtol must be a finite number > 0"),
    (lambda: sl.find_attractors(SYSTEM.f, 2, spread=-1.0), "spread must be a finite distance > 0"),
    (lambda: sl.find_saddle(SYSTEM.f, torch.zeros(2), A, B, tol=0.0), "tol must be a finite number > 0"),
    (lambda: sl.find_saddle(SYSTEM.f, torch.zeros(2), A, B, rounds=-1), "rounds must be an integer >= 0"),
    (lambda: sl.find_saddles(SYSTEM.f, torch.zeros(8, 2), tol=float("nan")), "tol must be a finite fraction"),
    (lambda: sl.basin_labels(SYSTEM.f, torch.zeros(3, 2), ENDS, margin=-1.0), "margin must be a finite distance >= 0"),
    # the same attractor twice: the margin's shifts along b - a were NaN, blamed on x
    (lambda: sl.basin_labels(SYSTEM.f, torch.zeros(3, 2), ENDS[[1, 1]]), r"same point in rows 0 and 1"),
    (lambda: sl.validate_kef(lambda x: x[..., 0], SYSTEM.f, ENDS[[0, 0]], torch.zeros(3, 2)), "give distinct attractors"),
    (lambda: sl.separatrix_point(SYSTEM.f, A, B.to(torch.complex64)), "b holds torch.complex64 values"),
    (lambda: sl.separatrix_error(lambda x: x[..., 0], SYSTEM.f, A, B, n_grid=1), "n_grid must be an integer >= 2"),
    (lambda: sl.segment_clouds(A, B, 10, hi=float("inf")), "hi must be a finite number >= 0"),
    (lambda: sl.basin_agreement(lambda x: x[..., 0], torch.zeros(3, 2), torch.tensor([0, 1, 2])),
     "labels must be 0 or 1"),
    (lambda: sl.smallest_flip(lambda x: x[..., 0], A.to(torch.complex64)), "x0 holds torch.complex64 values"),
    (lambda: sl.flips(SYSTEM.f, A, B - A, ENDS, margin=1.0), r"margin must lie in \[0, 1\)"),
    (lambda: sl.flips(SYSTEM.f, A, B - A, torch.tensor(1.0)), r"attractors must be a \[k, 2\] tensor"),
    (lambda: sl.flips(SYSTEM.f, A, B - A, ENDS[:1]), "attractors holds 1 point: a flip needs another basin"),
    (lambda: sl.refine_flip(SYSTEM.f, A, B - A, ENDS, n_iter=-1), "n_iter must be a positive integer"),
    (lambda: sl.brute_force_flip(SYSTEM.f, A, ENDS, reach=-1.0), "reach must be a finite number > 0"),
    (lambda: sl.grid((0.0, 0.0, 0.0), (1.0, 1.0)), "lo must be a corner"),
    (lambda: sl.grid((1.0, 0.0), (0.0, 1.0)), "lo must lie below hi"),
    (lambda: sl.bistable_nd(4, seed=None), "seed must be an integer"),
    (lambda: sl.segment_clouds(A, B, 10, seed=1.5), "seed must be an integer"),
    (lambda: sl.fit_kef(SYSTEM.f, A, B, seed="0", epochs=10, progress=False), "seed must be an integer"),
    (lambda: sl.basin_agreement(lambda x: x[..., 0], None, torch.zeros(3)), "x must be states"),
    (lambda: sl.plots.samples(None), "points must be states"),
    (lambda: sl.plots.trajectories(torch.zeros(5, 3)), r"traj must be \[time, n, 2\]"),
    (lambda: sl.plots.phase_portrait(sl.bistable_nd(3)), "draws a 2-D field.*kef_slice"),
    (lambda: sl.plots.phase_portrait(sl.bistable_nd(3).f), "draws a 2-D field.*kef_slice"),
    (lambda: sl.plots.phase_portrait(SYSTEM, n=1), "n must be an integer >= 2"),
    (lambda: sl.duffing(float("nan")), "delta must be a finite number"),
    (lambda: sl.curved_bistable("a"), "a must be a finite number"),
    (lambda: sl.bistable_nd(4, curvature=float("inf")), "curvature must be a finite number"),
    (lambda: sl.duffing(True), "delta must be a finite number"),
    (lambda: sl.bistable_nd(4, rates=(True, 2.0)), r"rates must be \(low, high\)"),
    # psi with more than one number per point: a reshape deep in separatrix_error failed, and
    # smallest_flip stepped on the sum of the outputs
    (lambda: sl.separatrix_error(lambda x: x, SYSTEM.f, A, B, n_curves=4), r"psi returned shape \(4, 2001, 2\)"),
    (lambda: sl.smallest_flip(lambda x: x, A), r"psi returned shape \(1, 2\) .* one number per point"),
    (lambda: sl.basin_agreement(lambda x: [0.0] * len(x), torch.zeros(3, 2), torch.tensor([0, 1, 0])),
     "psi returned a list"),
    (lambda: sl.Recipe.low_dim(batch_size=1), "batch_size must be at least 2"),
    (lambda: sl.plots.kef_levels(lambda x: x, SYSTEM.f, [-1, -1], [1, 1], n=5), r"psi returned shape \(25, 2\)"),
    (lambda: sl.plots.kef_1d(lambda x: x.repeat(1, 2)), r"psi returned shape \(401, 2\)"),
    (lambda: sl.plots.kef_levels(lambda x: x[..., 0], SYSTEM.f, n=1), "n must be an integer >= 2"),
    (lambda: sl.plots.loss_curve(lambda x: x), "loss_curve draws fitted KEFs"),
    (lambda: sl.gru_vector_field(sl.load_flipflop_gru(), dt=True), "dt must be a finite number > 0"),
    (lambda: sl.gru_vector_field(sl.load_flipflop_gru())(torch.zeros(3, 5)),
     r"field is 2-dimensional .* shape \(3, 5\): give \[\.\.\., 2\]"),
    (lambda: sl.load_flipflop_gru(device="tpu"), "device must be a torch device"),
    (lambda: sl.MultiscaleGaussian(2).sample(3, generator=5), "generator must be a torch.Generator"),
    (lambda: sl.validate_kef(lambda x: x[..., 0], SYSTEM.f, ENDS, torch.tensor([[0.5, float("nan")]])),
     r"points has NaN or inf entries at 1 of 1 states, so validate_kef"),
    (lambda: sl.validate_kef(lambda x: x[..., 0], SYSTEM.f, ENDS[:1], torch.zeros(3, 2)),
     r"attractors must be the two attractors, \[2, d\]"),
    (lambda: sl.fit_kef(SYSTEM.f, A, B, device="tpu", epochs=10, progress=False), "device must be a torch device"),
    (lambda: sl.Recipe(model="mlp"), "model must be None or a torch.nn.Module"),
    (lambda: sl.Training(balance_weight=float("inf")), "balance_weight must be a finite number >= 0"),
    (lambda: sl.Sampling(radial="yes"), "radial must be None, 'segment'"),
    (lambda: sl.fit_kef(SYSTEM.f, A, B[:1], progress=False), r"b must be a 1-D tensor of length 2"),
    (lambda: sl.bistable_nd(4, rates=torch.tensor(1.0)), r"rates must be \(low, high\)"),
    (lambda: sl.fit_kef(SYSTEM.f, A, B, epochs=10, progress=False,
                        recipe=sl.Recipe(sl.Sampling(), model=torch.nn.Linear(3, 1))),
     r"the model failed on input of shape \(3, 2\)"),
])
def test_bad_input_is_named_not_left_to_torch(call, message):
    # each of these used to fail inside torch (AttributeError, IndexError, RuntimeError) with a
    # message that named neither the argument nor the fix
    with pytest.raises(ValueError, match=message):
        call()


def test_psi_at_integer_states_is_psi_at_those_floats_and_a_wrong_dimension_is_named():
    kef = sl.fit_kef(SYSTEM.f, A, B, epochs=200, recipe=sl.Recipe.low_dim(tol=None), progress=False, device="cpu")
    x = torch.tensor([[1, 0], [0, 1]])
    torch.testing.assert_close(kef(x), kef(x.float()))     # not truncated to an integer psi
    assert kef(x).dtype == torch.float32
    with pytest.raises(ValueError, match=r"x must be states, a tensor \[\.\.\., 2\]"):
        kef(torch.zeros(4, 3))


def test_a_field_of_something_that_is_not_a_network_is_named():
    with pytest.raises(TypeError, match="model must be a flip-flop network"):
        sl.gru_vector_field("model.pt")


def test_a_system_parameter_from_torch_or_numpy_is_a_float():
    # a 0-d tensor or a numpy scalar is a number; the system keeps it as a float
    assert sl.duffing(torch.tensor(0.5)).params["delta"] == 0.5
    assert type(sl.mutual_inhibition(np.float32(3.0)).params["w"]) is float
    assert torch.equal(sl.bistable_nd(4, curvature=torch.tensor(0.25)).f(torch.ones(2, 4)),
                       sl.bistable_nd(4, curvature=0.25).f(torch.ones(2, 4)))


def test_no_states_integrate_to_no_trajectories():
    # torchdiffeq's step size underflowed on zero states, which integrate blamed on the field
    assert sl.integrate(SYSTEM.f, torch.zeros(0, 2), [0.0, 1.0, 2.0]).shape == (3, 0, 2)
    assert sl.basin_labels(SYSTEM.f, torch.zeros(0, 2), ENDS).shape == (0,)


def test_an_integer_dimension_from_numpy_is_taken():
    assert sl.bistable_nd(np.int64(4)).dim == 4


def test_psi_may_return_one_number_per_point_in_either_shape():
    x = torch.randn(40, 2)
    labels = (x[:, 0] > 0).long()
    flat = sl.basin_agreement(lambda p: p[..., 0], x, labels)
    assert flat == sl.basin_agreement(lambda p: p[..., :1], x, labels) == 1.0
    assert torch.allclose(sl.smallest_flip(lambda p: p[..., :1], A), torch.tensor([1.0, 0.0]))


def test_the_1d_kef_takes_a_list():
    assert torch.allclose(sl.analytic_kef_1d([0.6, -0.6]), torch.tensor([0.75, -0.75]))
