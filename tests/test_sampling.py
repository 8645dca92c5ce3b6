import pytest
import torch

from seplib import MultiscaleGaussian


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


@pytest.mark.parametrize("kwargs, message", [
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
