import warnings

import numpy as np
import pytest
import torch

import seplib as sl
import seplib.kef as kef_module
from seplib._training import disagreement, warn_if_ends_not_split
from seplib.kef import carry, fit_kef_snapshots, pair_loss

FAST = dict(epochs=60, progress=False, device="cpu")
AB = torch.tensor(sl.bistable_2d().attractors)   # (-1, 0) and (1, 0); also the other 2-D systems'


def recipe(sampling=None, refinement=None, model=None, **training):
    """The low-dimensional recipe with the tests' batch of 64, and what a test changes in it."""
    base = sl.Recipe.low_dim(**({"batch_size": 64} | training))
    return sl.Recipe(base.sampling if sampling is None else sampling, base.training, refinement, model)


def fit(system, *, ab=AB, how=None, **kw):
    """fit_kef on a 2-D system between ``ab`` with ``recipe()`` (or ``how``) and FAST's settings."""
    return sl.fit_kef(system, *ab, recipe=recipe() if how is None else how, **(FAST | kw))


def test_default_fit_on_2d_bistable_puts_training_samples_in_the_right_basin():
    system = sl.bistable_2d()
    kef = sl.fit_kef(system, *AB, recipe=sl.Recipe.low_dim(), progress=False, device="cpu")
    x = sl.MultiscaleGaussian(2).sample(500, torch.Generator().manual_seed(7)).reshape(-1, 2)
    labels = sl.basin_labels(system, x, torch.tensor(system.attractors))
    assert sl.basin_agreement(kef, x, labels) >= 0.99
    assert kef.loss_history_[-1] < kef.loss_history_[0]
    # it stopped early, at a check (every 500 epochs), once the zero set had settled
    assert len(kef.loss_history_) < 5000 and len(kef.loss_history_) % 500 == 0


def test_early_stop_checks_every_500_epochs_from_the_second_and_tol_none_runs_every_epoch():
    # far fewer than half the probe points change sign between checks, but the first check
    # (epoch 500) has no earlier signs to compare with: the first stop can come at 1000
    assert len(fit(sl.bistable_2d(), epochs=2500, how=recipe(tol=0.5)).loss_history_) == 1000
    assert len(fit(sl.bistable_2d(), epochs=2500, how=recipe(tol=None)).loss_history_) == 2500


def test_the_early_stop_waits_while_trajectory_pairs_disagree_on_their_basin(monkeypatch):
    monkeypatch.setattr(sl.kef, "STOP_PAIR_DISAGREEMENT", -1.0)  # no count of pairs meets it
    # ... so it runs all its epochs, and says so with the figures it saw
    with pytest.warns(RuntimeWarning, match=r"ran all 2500 epochs without its zero set settling: .* "
                                            r"differs at the two ends of \d+\.\d\d% of the trajectory pairs"):
        kef = fit(sl.bistable_2d(), epochs=2500, how=recipe(tol=0.5))
    assert len(kef.loss_history_) == 2500


def test_the_early_stop_waits_while_psi_has_one_sign_and_a_one_signed_psi_warns():
    # an output bias of 5 and a tiny step keep psi > 0 everywhere: its signs never change and the
    # pairs all agree, but it has found no separatrix, so training runs on and then warns
    net = sl.kef.mlp(2)
    with torch.no_grad():
        net[-1].bias.fill_(5.0)
    with pytest.warns(RuntimeWarning, match="psi is positive at all 15360 probe samples"):
        kef = fit(sl.bistable_2d(), epochs=1500, how=recipe(model=net, lr=1e-9, balance_weight=0.0, batch_size=16))
    assert len(kef.loss_history_) == 1500


def test_disagreement_counts_the_pairs_whose_ends_psi_puts_on_opposite_sides():
    net = torch.nn.Linear(2, 1)  # psi(x) = x0
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0]]))
        net.bias.zero_()
    start_positive = torch.tensor([True, True, False, False])
    end = torch.tensor([[2.0, 0.0], [-1.0, 5.0], [-1.0, 3.0], [0.5, 1.0]])
    assert disagreement(start_positive, net, end) == 0.5


def test_1d_standard_kef_matches_the_analytic_one_on_each_side():
    # the analytic KEF x / sqrt|1 - x^2| is the one of eigenvalue 1. No trajectory crosses 0, so
    # each side's psi is a KEF on its own: psi matches it up to one scale per side, sign included
    kef = sl.fit_kef(sl.bistable_1d(), [-1.0], [1.0], eigenvalue=1.0, recipe=sl.Recipe.low_dim(), progress=False,
                     device="cpu")
    x = torch.linspace(-0.9, 0.9, 181).unsqueeze(-1)
    with torch.no_grad():
        learned = kef(x)
    analytic = sl.analytic_kef_1d(x[:, 0])
    for side in (x[:, 0] < 0, x[:, 0] > 0):
        assert torch.corrcoef(torch.stack([learned[side], analytic[side]]))[0, 1].abs() >= 0.99
    crossings = x[1:, 0][torch.sign(learned[1:]) != torch.sign(learned[:-1])]
    assert len(crossings) == 1 and crossings.abs().max() <= 0.02


@pytest.mark.parametrize("rhs", ["standard", "squashed"])
def test_small_fit_finds_the_2d_bistable_separatrix(rhs):
    """Accuracy with small settings: the zero set within 0.02 of x = 0 (median)."""
    system = sl.bistable_2d()
    kef = sl.fit_kef(system, *AB, rhs=rhs, epochs=500, recipe=sl.Recipe.low_dim(), progress=False, device="cpu")
    a = torch.tensor(system.attractors)
    err = sl.separatrix_error(kef, system, a[0], a[1], n_curves=60, n_iter=16)
    assert err["median"] <= 0.02 and err["p90"] <= 0.05 and err["r2"] >= 0.99


@pytest.mark.parametrize("system, mu", [(sl.bistable_2d(), 1.0), (sl.duffing(), (5**0.5 - 1) / 2),
                                        (sl.duffing(3.0), (13**0.5 - 3) / 2)])
def test_expansion_rate_is_the_saddles_unstable_rate(system, mu):
    x = sl.MultiscaleGaussian(2).sample(256, torch.Generator().manual_seed(0)).reshape(-1, 2)
    assert abs(sl.expansion_rate(system, x) - mu) < 0.01


def test_auto_eigenvalue_is_a_fixed_fraction_of_the_saddles_rate():
    kef = fit(sl.duffing())
    assert abs(kef.eigenvalue - 0.4 * (5**0.5 - 1) / 2) < 0.005
    assert fit(sl.duffing(), eigenvalue=0.7).eigenvalue == 0.7


def test_auto_mean_centres_the_samples_on_the_saddle():
    x0 = -0.20905973   # x' = x - x^3 + 0.2, y' = -y: the saddle is at the middle root, off the origin

    def well(x):
        return torch.stack((x[..., 0] - x[..., 0] ** 3 + 0.2, -x[..., 1]), dim=-1)

    kef = fit(well)
    assert torch.allclose(kef.mean_, torch.tensor([x0, 0.0], dtype=kef.mean_.dtype), atol=1e-4)
    assert abs(kef.eigenvalue - 0.4 * (1 - 3 * x0**2)) < 1e-4
    origin = fit(well, how=recipe(sl.Sampling(centre=None)))
    assert torch.equal(origin.mean_, torch.zeros(2, dtype=kef.mean_.dtype))
    assert fit(well, how=recipe(sl.Sampling(centre=[0.5, 0.1]))).mean_.tolist() == pytest.approx([0.5, 0.1])
    with pytest.raises(ValueError, match="centre must be 'auto', None"):
        sl.Sampling(centre="saddle")


def test_no_saddle_found_is_said_not_hidden():
    with pytest.warns(RuntimeWarning, match="found no saddle among its samples.*stay centred at"):
        kef = fit(lambda x: x)   # a source: states separate, but no saddle
    assert kef.mean_.abs().max() == 0 and abs(kef.eigenvalue - 0.4) < 1e-6


@pytest.mark.parametrize("weights, warns", [([1.0, 0.0], False), ([0.0, 1.0], True)])
def test_a_psi_that_does_not_split_the_attractors_is_warned_of(weights, warns):
    # on the 2D bistable system psi = x splits the attractors (+-1, 0); psi = y (an eigenfunction
    # too, of eigenvalue -1) vanishes through both, and the ends of the unstable manifold tell
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([weights]))
    saddle, sampler = torch.zeros(2), sl.MultiscaleGaussian(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_ends_not_split(net, sl.bistable_2d(), saddle, sampler)
    said = [str(w.message) for w in caught if "does not tell apart the two attractors" in str(w.message)]
    assert len(said) == int(warns)
    if warns:
        assert "[1, 0]" in said[0] and "[-1, 0]" in said[0] and "anchor_weight=" in said[0]


def test_auto_eigenvalue_refuses_a_field_without_a_saddle():
    with pytest.raises(ValueError, match="pulls no nearby states apart"):
        fit(lambda x: -x)


def test_same_seed_same_result():
    a, b, c = (fit(sl.duffing(), seed=seed) for seed in (3, 3, 4))
    assert a.loss_history_ == b.loss_history_ and a.loss_history_ != c.loss_history_
    x = torch.randn(10, 2)
    assert torch.equal(a(x), b(x))


def test_fit_kef_leaves_the_global_random_state_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    fit(sl.bistable_2d())
    assert torch.equal(torch.rand(3), expected)


def test_custom_rhs_and_custom_model():
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    kef = fit(sl.bistable_2d(), rhs=lambda p: p - p**3, how=recipe(model=net))
    assert kef.net is net and kef(torch.zeros(5, 2)).shape == (5,)
    assert kef(torch.zeros(3, 4, 2)).shape == (3, 4)


def test_snapshots_are_taken_during_one_training():
    snaps = fit_kef_snapshots(sl.bistable_2d(), *AB, [20, 60], recipe=recipe(), progress=False, device="cpu")
    assert len(snaps) == 2 and len(snaps[1].loss_history_) == 60
    x = torch.randn(10, 2)
    assert not torch.equal(snaps[0](x), snaps[1](x))


@pytest.mark.parametrize("kwargs, message", [
    (dict(eigenvalue=0.0), "eigenvalue must be 'auto' or a finite number > 0"),
    (dict(eigenvalue=-1.0), "eigenvalue must be 'auto' or a finite number > 0"),
    (dict(eigenvalue="fast"), "eigenvalue must be 'auto' or a finite number > 0"),
    (dict(rhs="lambda phi: phi"), "rhs must be 'standard', 'squashed' or a callable"),
    (dict(epochs=0), "epochs must be a positive integer"),
    (dict(eigenvalue=True), "eigenvalue must be 'auto' or a finite number > 0"),
    (dict(eigenvalue=torch.tensor([0.5, 1.0])), "eigenvalue must be 'auto' or a finite number > 0"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(sl.bistable_2d(), **kwargs)


def test_a_recipe_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="recipe must be None or a seplib.Recipe"):
        sl.fit_kef(sl.bistable_2d(), *AB, recipe="low_dim")


@pytest.mark.parametrize("make, message", [
    (lambda: sl.Training(lr=0.0), "lr must be a finite number > 0"),
    (lambda: sl.Training(epochs=0), "epochs must be a positive integer"),
    (lambda: sl.Training(flow_time=0.0), "flow_time must be 'auto', None or a finite time > 0"),
    (lambda: sl.Training(flow_time=float("inf")), "flow_time must be 'auto', None or a finite time > 0"),
    (lambda: sl.Training(flow_time=True), "flow_time must be 'auto', None or a finite time > 0"),
    (lambda: sl.Training(pair_weight=-1.0), "pair_weight must be a finite number >= 0"),
    (lambda: sl.Training(tol=1.0), "tol must be None"),
    (lambda: sl.Training(tol=-0.1), "tol must be None"),
    (lambda: sl.Training(tol=True), "tol must be None"),
    (lambda: sl.Training(balance_weight=float("nan")), "balance_weight must be a finite number >= 0"),
    (lambda: sl.Training(anchor_weight=-1.0), "anchor_weight must be a finite number >= 0"),
    (lambda: sl.Training(batch_size=1), "batch_size must be at least 2"),
    (lambda: sl.Sampling(scales=[0.1, -2.0]), "scales must be finite and > 0"),
    (lambda: sl.Sampling(scales=[]), "scales is empty"),
    (lambda: sl.Sampling(radial=True), "radial must be None, 'segment'"),
    (lambda: sl.Sampling(radial=-1.0), "radial must be None, 'segment'"),
    (lambda: sl.Sampling(radial="wide"), "radial must be None, 'segment'"),
    (lambda: sl.Sampling(cov="round"), "cov must be 'segment', 'identity'"),
    (lambda: sl.Sampling(segment="yes"), "segment must be True"),
    (lambda: sl.Sampling(centre=[0.0, float("nan")]), "centre has NaN"),
    (lambda: sl.Sampling(rate=0.0), "rate must be None"),
    (lambda: sl.Refinement(states=0), "states must be a positive integer"),
    (lambda: sl.Recipe(sampling="around"), "sampling must be 'auto' or a seplib.Sampling"),
    (lambda: sl.Recipe(training=dict(epochs=5)), "training must be 'auto' or a seplib.Training"),
    (lambda: sl.Recipe(refinement=True), "refinement must be None or a seplib.Refinement"),
    (lambda: sl.Recipe(model="mlp"), "model must be None or a torch.nn.Module"),
])
def test_bad_settings_are_refused_where_they_are_made(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_settings_print_readably_and_change_by_name():
    region = sl.Sampling(centre=[0.5, 0.1], cov="segment", segment=True, radial="segment", rate=1.5)
    shown = str(sl.Recipe(region, sl.Training(epochs=300)))
    for said in ("centre   [0.5, 0.1] (d = 2)", "|b - a|^2 (I/d + e e^T)", "segment  yes", "epochs          300",
                 "rate     1.5", "states          2000", "mlp"):
        assert said in shown
    assert "sampling_region(field, a, b)" in str(sl.Recipe()) and "Training.for_rhs(rhs)" in str(sl.Recipe())
    assert region.replace(radial=None).radial is None and region.radial == "segment"
    assert sl.Training().replace(epochs=7).epochs == 7
    assert sl.Training.for_rhs("squashed").batch_size == 96 and sl.Training.for_rhs("standard").batch_size == 192
    with pytest.raises(TypeError, match="no setting"):
        region.replace(mean=None)
    with pytest.raises(TypeError, match="no setting"):
        sl.Training().replace(lr_decay=0.1)


@pytest.mark.parametrize("a, b, message", [
    ([0.0, 0.0], [0.0, 0.0], "same point"), ([0.0, float("nan")], [1.0, 0.0], "a has NaN"),
    ([0.0, 0.0, 1.0], [1.0, 0.0], "length 3"), ("ab", [1.0, 0.0], "a must be a point"),
])
def test_bad_attractors_are_refused(a, b, message):
    with pytest.raises(ValueError, match=message):
        fit(sl.bistable_2d(), ab=(a, b))


@pytest.mark.parametrize("eigenvalue", [torch.tensor(0.5), np.float32(0.5), np.array(0.5)])
def test_a_number_from_torch_or_numpy_is_taken_as_the_eigenvalue(eigenvalue):
    # a rate computed with torch or numpy arrives as a 0-d tensor or a numpy scalar, not a float
    kef = fit(sl.bistable_2d(), eigenvalue=eigenvalue, how=recipe(flow_time=np.float64(0.2), tol=torch.tensor(0.01)))
    assert type(kef.eigenvalue) is float and kef.eigenvalue == 0.5


def test_segment_adds_a_group_of_samples_around_the_segment():
    rows = []

    def field(x):
        rows.append(len(x.reshape(-1, 2)))
        return sl.bistable_2d().f(x)

    kef = fit(field, eigenvalue=1.0, how=recipe(sl.Sampling(centre=None, segment=True), flow_time=None))
    # the checks (a, b and their midpoint; 4 per group), then every epoch's samples: 7 groups (six
    # scales and the segment's) of batch_size each
    assert sum(rows) == 3 + 7 * 4 + FAST["epochs"] * 7 * 64
    assert len(kef.loss_history_) == FAST["epochs"]


def test_a_radius_from_torch_is_taken():
    kef = fit(sl.bistable_2d(), how=recipe(sl.Sampling(radial=torch.tensor(2.0))))
    assert kef.net[0].radius.item() == 2.0


def test_a_model_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"model returned shape \(3, 2\)"):
        fit(sl.bistable_2d(), how=recipe(model=torch.nn.Linear(2, 2)))


def test_nan_in_the_field_stops_training_and_names_the_epochs():
    rows = {"n": 0}

    def field(x):
        rows["n"] += len(x.reshape(-1, 2))
        # NaN after the checks (3 states, then 4 samples per scale) and the samples of epochs 0-99
        return x * float("nan") if rows["n"] > 3 + 6 * 4 + 100 * 6 * 64 else -x

    with pytest.raises(FloatingPointError, match="field's value is NaN .* stopped at epoch 100 .*epochs 100-149"):
        # -x has no saddle for "auto" to look for; no trajectory pairs, whose integration would
        # meet the NaN first
        fit(field, eigenvalue=1.0, epochs=150, how=recipe(sl.Sampling(centre=None), flow_time=None))


def test_a_diverging_loss_stops_training():
    with pytest.raises(FloatingPointError, match="loss became .* at epoch"):
        fit(sl.bistable_2d(), rhs=lambda p: p * 1e30 * torch.exp(100 * p))


@pytest.mark.parametrize("by", ["name", "callable"])   # closed form, or RK4 for a callable R
def test_carry_follows_the_objectives_own_flow(by):
    psi, t = torch.linspace(-0.9, 0.9, 7).unsqueeze(-1), torch.linspace(0.1, 2.0, 7)
    e = torch.exp(0.5 * t).unsqueeze(-1)
    R = {name: name if by == "name" else sl.kef.OBJECTIVES[name] for name in ("standard", "squashed")}
    assert torch.allclose(carry(R["standard"], 0.5, psi, t), psi * e, rtol=1e-5)
    # dpsi/dt = lambda (psi - psi^3) has psi(t) = psi e / sqrt(1 - psi^2 + psi^2 e^2), e = exp(lambda t)
    squashed = psi * e / torch.sqrt(1 - psi**2 + psi**2 * e**2)
    assert torch.allclose(carry(R["squashed"], 0.5, psi, t), squashed, atol=1e-5)


def test_pair_loss_vanishes_on_the_analytic_kef_only():
    system = sl.bistable_1d()
    x0 = torch.linspace(-0.95, 0.95, 64).unsqueeze(-1)
    start, end, t = sl.trajectory_pairs(system, x0, longest=1.0)
    perm = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))
    exact = pair_loss(sl.analytic_kef_1d(start[:, 0]), sl.analytic_kef_1d(end[:, 0]), t, "standard", 1.0, perm)
    wrong = pair_loss(start[:, 0], end[:, 0], t, "standard", 1.0, perm)   # psi = x: right zero, wrong growth
    assert exact < 1e-6 and wrong > 1e-3


def test_trained_weights_save_and_load_with_weights_only(tmp_path):
    kef = fit(sl.bistable_2d())
    torch.save(kef.net.state_dict(), tmp_path / "psi.pt")
    net = sl.kef.mlp(2)
    net.load_state_dict(torch.load(tmp_path / "psi.pt", weights_only=True))
    x = torch.randn(10, 2)
    assert torch.equal(net(x).squeeze(-1), kef(x))


def test_radial_feeds_the_squared_distance_from_the_samples_centre_and_saves_with_the_weights(tmp_path):
    centre = torch.tensor([0.3, -0.2])
    kef = fit(sl.bistable_2d(), how=recipe(sl.Sampling(centre=centre, radial=2.0)))
    feature = kef.net[0]
    assert isinstance(feature, sl.kef.Radial) and torch.equal(feature.centre, centre)
    torch.save(kef.net.state_dict(), tmp_path / "psi.pt")
    net = sl.kef.mlp(2, radial=(torch.zeros(2), 1.0))   # centre and radius come back from the file
    net.load_state_dict(torch.load(tmp_path / "psi.pt", weights_only=True))
    x = torch.randn(10, 2)
    assert torch.equal(net(x).squeeze(-1), kef(x)) and net[0].radius.item() == 2.0
    with pytest.raises(ValueError, match="with a model of your own put a seplib.kef.Radial"):
        fit(sl.bistable_2d(), how=recipe(sl.Sampling(radial=1.0), model=sl.kef.mlp(2)))
    for radius in (0.0, float("nan"), "wide"):
        with pytest.raises(ValueError, match="radial must be None, 'segment'"):
            sl.Sampling(radial=radius)


def test_the_returned_psi_has_the_running_average_of_the_weights():
    steps = []

    def keep(epoch, kef):  # the callback sees each step's own weights
        steps.append(torch.cat([p.detach().reshape(-1) for p in kef.net.parameters()]).clone())

    kef = kef_module._fit(sl.bistable_2d(), *AB, "standard", "auto", FAST["epochs"], 0, "cpu", False, recipe(),
                          callback=keep)
    average = steps[0].clone()
    for t, w in enumerate(steps[1:], start=2):
        average.lerp_(w, 1 - min(sl.kef.AVERAGE_DECAY, (1 + t) / (10 + t)))
    final = torch.cat([p.detach().reshape(-1) for p in kef.net.parameters()])
    assert torch.allclose(final, average, atol=1e-6) and not torch.allclose(final, steps[-1], atol=1e-6)


def test_anchor_loss_is_zero_only_when_each_attractor_keeps_one_sign():
    from seplib.kef import anchor_loss
    near_a, near_b = -torch.rand(50) - 0.1, torch.rand(50) + 0.1
    assert anchor_loss(near_a, near_b) == 0 and anchor_loss(3 * near_b, 3 * near_a) == 0   # any scale, either sign
    mixed = torch.cat((near_a[:25], -near_a[25:]))       # one sign flips inside a's neighbourhood
    assert 0.3 < anchor_loss(mixed, near_b) < 1
    assert anchor_loss(near_b, near_b) == 1                # the same sign at both attractors


def test_the_anchor_trains_with_both_objectives_and_refuses_malformed_attractors():
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    for rhs in ("standard", "squashed", lambda p: p - p**3):
        kef = fit(system, rhs=rhs, how=recipe(anchor_weight=1.0))
        with torch.no_grad():
            assert kef(attractors[0]) * kef(attractors[1]) < 0
    # the anchor is 0 once each attractor has its own sign, and 1 (times its weight) for a psi of
    # one sign at both: here psi = 5 + small. Its first epoch, against anchor_weight=0 (the same
    # samples and rows), costs 2 (1 - |gap| / 10) more
    def first_loss(anchor_weight):
        torch.manual_seed(0)
        net = sl.kef.mlp(2)
        with torch.no_grad():
            net[-1].bias.fill_(5.0)
        return fit(system, how=recipe(model=net, anchor_weight=anchor_weight)).loss_history_[0]

    plain, anchored = first_loss(0.0), first_loss(2.0)
    assert 1.5 < anchored - plain <= 2.0


def test_the_field_is_called_in_chunks_with_the_same_result(monkeypatch):
    system, sizes = sl.bistable_2d(), []

    def field(x):
        sizes.append(len(x.reshape(-1, 2)))
        return system(x)

    kw = dict(epochs=150, seed=2, how=recipe(flow_time=None))
    chunked = fit(field, **kw)
    assert max(sizes) <= kef_module.FIELD_CHUNK < 100 * 6 * 64   # a block's samples, split
    monkeypatch.setattr(kef_module, "FIELD_CHUNK", 10**9)
    sizes.clear()
    whole = fit(field, **kw)
    assert max(sizes) == 100 * 6 * 64 and whole.loss_history_ == chunked.loss_history_


def test_sign_loss_is_near_zero_only_when_each_state_has_its_basins_sign():
    from seplib.kef import sign_loss
    y = torch.tensor([1.0, 1.0, -1.0, -1.0] * 10)
    right = y * (torch.rand(40, generator=torch.Generator().manual_seed(0)) + 0.5)
    assert sign_loss(right, y) < 1e-3 and sign_loss(1e-4 * right, y) < 1e-3    # any scale
    wrong = torch.cat((-right[:4], right[4:]))                               # 4 of 40 flipped
    assert sign_loss(wrong, y) > 0.05 and sign_loss(-right, y) > 5 * sign_loss(wrong, y)   # grows with the wrong


def test_zero_set_labels_takes_the_states_nearest_psis_zero_set_and_simulates_their_basins():
    from seplib.kef import zero_set_labels
    system = sl.bistable_2d()          # basins x < 0 and x > 0; psi's zero set put at x = 0.3
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0]]))
        net.bias.fill_(-0.3)
    probes = torch.randn(2, 500, 2) * torch.tensor([0.5, 2.0])[:, None, None]   # two scales
    x, y = zero_set_labels(net, system, probes.reshape(-1, 2), 2, torch.tensor(system.attractors), n=40)
    assert x.shape == (40, 2) and y.shape == (40,)
    gap = (x[:, 0] - 0.3).abs()
    assert (gap[:20].max() < (probes[0, :, 0] - 0.3).abs().sort().values[20]
            and gap[20:].max() < (probes[1, :, 0] - 0.3).abs().sort().values[20])   # 20 per scale
    # psi is positive at b = (1, 0): +1 marks the states that go there, whatever psi says
    assert torch.equal(y, torch.where(x[:, 0] > 0, 1.0, -1.0))
    assert ((x[:, 0] > 0) & (x[:, 0] < 0.3)).any()          # some where psi has the wrong sign
    with pytest.raises(FloatingPointError, match="refine: integrating the field"):
        zero_set_labels(net, lambda z: z**3, probes.reshape(-1, 2), 2, torch.tensor(system.attractors), n=40)


def test_the_sign_loss_adds_to_the_step_on_the_rows_after_the_samples():
    from seplib.kef import _train_step, sign_loss
    system = sl.bistable_2d()
    torch.manual_seed(0)
    x, y = torch.randn(12, 2), torch.tensor([1.0, -1.0, 1.0, -1.0])
    perm = torch.randperm(4)
    for rhs in ("standard", "squashed", lambda p: p - p**3):
        losses = []
        for rows, labels in ((8, None), (12, y)):
            torch.manual_seed(1)
            net = sl.kef.mlp(2)
            losses.append(_train_step(net, rhs, 1.0, 1.0, 1.0, None, None, x[:rows], system(x[:8]), perm,
                                      None, labels))
        with torch.no_grad():
            expected = sign_loss(net(x[8:]).flatten(), y).item()
        assert abs(losses[1] - losses[0] - expected) < 1e-5


def test_the_refinement_trains_on_from_the_labelled_states(monkeypatch):
    system = sl.bistable_2d()
    attractors = torch.tensor(system.attractors)
    seen = []
    real = kef_module.zero_set_labels
    monkeypatch.setattr(kef_module, "zero_set_labels", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    kef = fit(system, how=recipe(refinement=sl.Refinement(states=60, epochs=40), tol=None))
    assert len(kef.loss_history_) == FAST["epochs"] + 40 and len(seen[0][1]) == 60
    with torch.no_grad():
        assert kef(attractors[0]) * kef(attractors[1]) < 0


def test_the_library_has_no_import_circle_and_fit_kef_fits_on_a_card():
    # each module imports only modules below it (seplib/__init__.py excepted): the graph of
    # "from .x import" lines has no cycle
    import ast
    import inspect
    from pathlib import Path
    root = Path(sl.__file__).parent
    graph = {}
    for path in root.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        graph[path.stem] = {(n.module or "").split(".")[0] or a.name for n in ast.walk(tree)
                            if isinstance(n, ast.ImportFrom) and n.level == 1 for a in n.names}
    done, stack = set(), []

    def visit(module):
        assert module not in stack, f"import circle: {' -> '.join(stack + [module])}"
        if module in done or module not in graph:
            return
        stack.append(module)
        for other in graph[module]:
            visit(other)
        stack.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert len(inspect.signature(sl.fit_kef).parameters) <= 10


@pytest.mark.parametrize("weights, warns", [([1.0, 0.0], False), ([0.0, 1.0], True)])
def test_a_psi_that_does_not_split_a_and_b_is_warned_of(weights, warns):
    # with the many-dimensions recipe fit_kef knows the saddle and checks a and b themselves
    from seplib._training import warn_if_not_split
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([weights]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_if_not_split(net, AB.double(), sl.MultiscaleGaussian(2), "the attractors a and b")
    said = [str(w.message) for w in caught if "does not tell apart the attractors a and b" in str(w.message)]
    assert len(said) == int(warns)
