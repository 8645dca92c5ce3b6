import math

import pytest
import torch

import seplib as sl
from seplib import MultiscaleGaussian, bistable_2d
from seplib.sampling import pair_ends, trajectory_pairs


def test_samples_have_one_block_per_scale_with_the_right_spread():
    m = MultiscaleGaussian(2, scales=[0.01, 4.0], mean=[1.0, -1.0], cov=[[2.0, 0.0], [0.0, 0.5]])
    x = m.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (2, 20000, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x.mean(dim=1), torch.tensor([[1.0, -1.0]] * 2), atol=0.05, rtol=0)
    var = x.var(dim=1)
    torch.testing.assert_close(var, torch.tensor([[0.02, 0.005], [8.0, 2.0]]), rtol=0.05, atol=1e-4)


def test_same_generator_seed_same_samples():
    m = MultiscaleGaussian(3)
    a = m.sample(10, torch.Generator().manual_seed(3))
    b = m.sample(10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_the_segment_group_lies_around_the_segment_like_segment_clouds():
    a, b = torch.zeros(16), torch.full((16,), 0.5)       # |b - a| = 2
    m = MultiscaleGaussian(16, scales=[0.1, 1.0], segment=(a, b))
    x = m.sample(4000, torch.Generator().manual_seed(0))
    assert m.groups == 3 and x.shape == (3, 4000, 16)
    # the Gaussians are those of the sampler without the segment, drawn first from the same stream
    assert torch.equal(x[:2], MultiscaleGaussian(16, scales=[0.1, 1.0]).sample(4000, torch.Generator().manual_seed(0)))
    group, e = x[2], (b - a) / 2
    along = (group - a) @ e / 2                          # the segment's parameter, plus noise
    off = (group - a) - ((group - a) @ e)[:, None] * e   # offset from the line through a and b
    assert 0.45 < along.mean() < 0.55 and along.min() >= -1 and along.max() <= 2   # offsets of norm <= |b - a|
    assert off.norm(dim=-1).max() <= 2.0 + 1e-5          # norms at most |b - a|
    # its norm: uniform in [0.1, 1] x |b - a|, root mean square 1.217; 15/16 of it off the line: 1.178
    assert 1.14 < off.norm(dim=-1).square().mean().sqrt() < 1.22
    sl_clouds = sl.segment_clouds(a, b, 4000)
    clouds_off = (sl_clouds - a) - ((sl_clouds - a) @ e)[:, None] * e
    assert abs(off.norm(dim=-1).mean() - clouds_off.norm(dim=-1).mean()) < 0.03


@pytest.mark.parametrize("kwargs, message", [
    (dict(segment=(torch.zeros(2), torch.zeros(2))), "same point"),
    (dict(segment=torch.zeros(2)), "segment's first point must be a 1-D tensor of length 2"),
    (dict(segment=(torch.zeros(3), torch.ones(3))), "segment's first point must be a 1-D tensor of length 2"),
    (dict(segment=3), "segment must be two points"),
    (dict(scales=[0.1, 0.0]), "scales must be finite and > 0"),
    (dict(scales=[-1.0]), "scales must be finite and > 0"),
    (dict(scales=[]), "scales is empty"),
    (dict(mean=[0.0, 0.0, 0.0]), "mean has shape"),
    (dict(cov=[[1.0, 0.0], [0.0, -1.0]]), "not positive definite"),
    (dict(cov=[[1.0, 0.5], [0.0, 1.0]]), "not symmetric"),
    (dict(cov=[1.0, 1.0]), "cov has shape"),
])
def test_bad_sampler_arguments_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiscaleGaussian(2, **kwargs)


def test_trajectory_pairs_lie_on_the_flow():
    # on the 2D bistable system y(t) = y(0) exp(-t) exactly
    x0 = MultiscaleGaussian(2).sample(20, torch.Generator().manual_seed(0)).reshape(-1, 2)
    start, end, t = trajectory_pairs(bistable_2d(), x0, longest=2.0, n_times=5)
    assert start.shape == end.shape == (5 * len(x0), 2) and t.shape == (5 * len(x0),)
    assert torch.allclose(t.unique(), torch.logspace(math.log10(2 / 32), math.log10(2.0), 5), rtol=1e-5)
    assert torch.allclose(end[:, 1], start[:, 1] * torch.exp(-t), atol=1e-3)


def test_pair_ends_say_which_start_each_pair_left_from():
    x0 = MultiscaleGaussian(2).sample(20, torch.Generator().manual_seed(0)).reshape(-1, 2)
    which, end, t = pair_ends(bistable_2d(), x0, longest=2.0, n_times=5)
    assert sorted(which.tolist()) == sorted(list(range(len(x0))) * 5)
    assert torch.allclose(end[:, 1], x0[which, 1] * torch.exp(-t), atol=1e-3)
    assert torch.equal(trajectory_pairs(bistable_2d(), x0, longest=2.0, n_times=5)[0], x0[which])


def test_trajectory_pairs_name_a_field_that_fails():
    x0 = torch.randn(8, 2)
    with pytest.raises(FloatingPointError, match="field returned NaN or inf at the samples"):
        trajectory_pairs(lambda x: x * float("nan"), x0, 1.0)

    def nan_far_out(x):  # finite at the samples, NaN where the flow takes them
        return torch.where(x.abs().amax(-1, keepdim=True) > 3, float("nan"), x)

    with pytest.raises(FloatingPointError, match="integrating the field from the samples failed"):
        trajectory_pairs(nan_far_out, x0.clamp(-1, 1), 5.0)
    with pytest.raises(ValueError, match="longest must be a finite time > 0"):
        trajectory_pairs(lambda x: -x, x0, 0.0)


def test_sampling_region_centres_on_the_separatrix_and_spreads_along_the_segment():
    system = sl.bistable_nd(8, seed=2)
    a, b = (torch.tensor(p) for p in system.attractors)
    region = sl.sampling_region(system, a, b)
    assert isinstance(region, sl.Sampling) and region.segment and region.radial == "segment"
    assert region.radius(a, b) == pytest.approx((b - a).norm().item())
    assert abs(system.separatrix_value(region.centre)) < 1e-4   # on the separatrix
    assert region.rate == pytest.approx(1.0, rel=1e-3)          # bistable_nd's saddle rate
    sampler = region.sampler(a, b)
    e = (b - a) / (b - a).norm()
    expected = (b - a).norm() ** 2 * (torch.eye(8) / 8 + torch.outer(e, e))
    torch.testing.assert_close(sampler.cov, expected.double())
    assert torch.equal(sampler.segment, torch.stack((a, b)).double())   # samples around the segment too
    # a curved separatrix: the samples must land in both basins at every scale
    x = region.replace(segment=False).sampler(a, b).sample(1000, torch.Generator().manual_seed(0))
    side = (system.separatrix_value(x) > 0).float().mean(dim=1)
    assert ((side > 0.2) & (side < 0.8)).all(), side
    with pytest.raises(ValueError, match="same point"):
        sl.sampling_region(system, a, a)
    with pytest.raises(ValueError, match="a must be a point"):
        sl.sampling_region(system, "a", b)                   # not numbers: named, not torch's TypeError
    with pytest.raises(ValueError, match=r"b must be a 1-D tensor of length 8, got shape \(1, 8\)"):
        sl.sampling_region(system, a, b[None])
    with pytest.raises(ValueError, match="b has NaN"):
        sl.sampling_region(system, a, torch.full((8,), float("nan")))
    with pytest.raises(ValueError, match="centre has dimension 8, the attractors 2"):
        region.sampler(a[:2], b[:2])


def test_sampling_region_finds_a_curved_separatrix_that_isotropic_samples_miss():
    # bistable_nd(8): curved separatrix, exact labels. Isotropic Gaussians put almost all their
    # samples in one basin and psi's sign follows no basin; sampling_region spreads them along
    # the segment between the attractors.
    system = sl.bistable_nd(8, seed=1)
    a, b = sl.find_attractors(system, 8)
    x = sl.segment_clouds(a, b, 2000)
    exact = (system.separatrix_value(x) > 0).long()
    region = sl.sampling_region(system, a, b)
    kef = sl.fit_kef(system, a, b, rhs="squashed", epochs=2000, recipe=sl.Recipe(region), progress=False,
                     device="cpu")
    assert sl.basin_agreement(kef, x, exact) >= 0.99
    # and fit_kef says so
    isotropic = sl.Recipe(
        sl.Sampling(region.centre, (b - a).norm() ** 2 / 8 * torch.eye(8)),
        sl.Recipe.low_dim().training, refinement=None)
    with pytest.warns(RuntimeWarning, match="does not tell apart|without its zero set settling"):
        isotropic = sl.fit_kef(system, a, b, rhs="squashed", epochs=2000, recipe=isotropic, progress=False,
                               device="cpu")
    assert sl.basin_agreement(isotropic, x, exact) < 0.9


def test_sampling_region_centres_on_the_saddle_it_finds_or_is_given():
    # the book's 2-unit GRU: the segment between the memories crosses the separatrix 0.03 from
    # the saddle
    model, card = sl.load_flipflop_gru(), sl.book_card("flipflop_gru_2d")
    field = sl.gru_vector_field(model, speed=card["field"]["speed"])
    a, b = torch.tensor(card["attractors"])
    saddle = torch.tensor(card["saddle"])
    rate, _ = sl.saddle_normal(field, saddle)
    found = sl.sampling_region(field, a, b)
    assert (found.centre - saddle).norm() < 1e-4
    assert found.rate == pytest.approx(rate, rel=1e-4)
    at_point = sl.sampling_region(field, a, b, saddle=None)   # the separatrix point, on the segment
    torch.testing.assert_close(at_point.centre, torch.tensor(card["separatrix_point"]), atol=1e-4, rtol=0)
    given = sl.sampling_region(field, a, b, saddle=saddle)
    assert torch.equal(given.centre, saddle) and given.cov == found.cov == "segment"
    with pytest.raises(ValueError, match="is not a saddle on a separatrix: the Jacobian there has 0"):
        sl.sampling_region(field, a, b, saddle=a)             # an attractor pulls nothing apart
    with pytest.raises(ValueError, match="saddle must be a finite point of dimension 2"):
        sl.sampling_region(field, a, b, saddle=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="saddle must be a finite point"):
        sl.sampling_region(field, a, b, saddle=[float("nan"), 0.0])
    with pytest.raises(ValueError, match="saddle must be a finite point of dimension 2"):
        sl.sampling_region(field, a, b, saddle=[object(), 0.0])
    with pytest.raises(ValueError, match="saddle must be 'auto', None or a point"):
        sl.sampling_region(field, a, b, saddle="nearest")


def test_sampling_region_says_when_it_finds_no_saddle():
    # f vanishes to third order at the origin: no saddle with one unstable direction there
    def field(x):
        return torch.stack((x[..., 0] ** 3 * (1 - x[..., 0] ** 2), -x[..., 1]), dim=-1)

    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="found no saddle near the separatrix point"):
        region = sl.sampling_region(field, a, b)
    assert region.centre.norm() < 1e-3 and region.rate > 0.025
    saddles, _ = sl.find_saddles(field, region.centre + 0.3 * torch.randn(500, 2))
    assert len(saddles) == 0
