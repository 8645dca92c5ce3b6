"""The CPU kernels of seplib/_fast.py, each held equal to its plain PyTorch twin."""
import copy

import pytest
import torch

import seplib as sl
from seplib.kef import pair_loss

def test_directional_derivative_matches_autograd_for_mlps_and_other_modules():
    from seplib.kef import directional_derivative, mlp

    class Custom(torch.nn.Module):  # not a Sequential: goes through forward-mode AD
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(2, 8)

        def forward(self, x):
            return torch.sin(self.a(x)).sum(-1, keepdim=True)

    x, v = torch.randn(50, 2), torch.randn(50, 2)
    for net in (mlp(2), Custom()):
        xx = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(net(xx).sum(), xx)
        psi, dpsi = directional_derivative(net, x, v)
        torch.testing.assert_close(psi, net(x))
        torch.testing.assert_close(dpsi, (grad * v).sum(-1, keepdim=True), atol=1e-5, rtol=1e-4)



def _assert_gradients_match_autograd(net, dim):
    """Gradients of a loss of psi and dpsi through ``directional_derivative`` against torch.func.jvp
    and autograd, in float64; only the first 20 of 30 rows carry a tangent, as in fit_kef."""
    from seplib.kef import directional_derivative
    x = torch.randn(30, dim, dtype=torch.float64, requires_grad=True)
    v = torch.randn(20, dim, dtype=torch.float64, requires_grad=True)
    weights = torch.arange(30, dtype=torch.float64)[:, None]

    def loss(psi, dpsi):
        return (psi.sin() * weights).sum() + (dpsi**2 * weights[:20]).sum()

    psi, dpsi = torch.func.jvp(net, (x[:20],), (v,))
    expected = torch.autograd.grad(loss(torch.cat((psi, net(x[20:]))), dpsi), [x, v, *net.parameters()])
    got = torch.autograd.grad(loss(*directional_derivative(net, x, v)), [x, v, *net.parameters()])
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_the_written_out_backward_matches_autograd():
    # through _fast.TanhMLPTangent
    from seplib.kef import mlp
    torch.manual_seed(0)
    _assert_gradients_match_autograd(mlp(2).double(), 2)


def test_a_radial_feature_first_keeps_the_written_out_path_and_its_gradients():
    # mlp(radial=...): the feature's value and tangent are formed first, then the same kernel
    from seplib.kef import Radial, mlp
    torch.manual_seed(0)
    net = mlp(3, radial=(torch.tensor([0.5, -1.0, 2.0]), 1.5)).double()
    assert isinstance(net[0], Radial)
    _assert_gradients_match_autograd(net, 3)
    x = torch.randn(30, 3, dtype=torch.float64)
    torch.testing.assert_close(net[0](x)[:, -1], (x - net[0].centre).square().sum(-1) / 1.5**2)


def test_layer_orders_other_than_mlps_go_through_forward_mode_ad():
    from seplib._fast import is_tanh_mlp
    from seplib.kef import directional_derivative
    nets = [torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)),
            torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1), torch.nn.Tanh())]
    x, v = torch.randn(10, 2), torch.randn(10, 2)
    for net in nets:
        assert not is_tanh_mlp(net)
        psi, dpsi = directional_derivative(net, x, v)
        torch.testing.assert_close(dpsi, torch.func.jvp(net, (x,), (v,))[1])



@pytest.mark.parametrize("rhs", ["standard", "squashed"])
@pytest.mark.parametrize("shift", [0.0, 2.0, -2.0])   # +-2: psi mostly one-signed, the balance acts
@pytest.mark.parametrize("pairs", [False, True])
def test_loss_and_grad_matches_autograd_on_kef_loss_and_pair_loss(rhs, shift, pairs):
    from seplib._fast import loss_and_grad
    from seplib.kef import BOUNDS, OBJECTIVES, PAIR_LOG_SCALE, kef_loss
    gen = torch.Generator().manual_seed(0)
    n, n_scales, eigenvalue, pair_weight = 16, 3, 0.7, 3.0
    # scaled by 1.5 so that some |psi| exceed the squashed objective's bound of 1
    psi = 1.5 * (torch.randn(n * n_scales + 2 * n * pairs, 1, generator=gen, dtype=torch.float64) + shift)
    dpsi = torch.randn(n * n_scales, 1, generator=gen, dtype=torch.float64)
    perm, t = torch.randperm(n, generator=gen), torch.rand(n, generator=gen, dtype=torch.float64)
    psi_, dpsi_ = psi.clone().requires_grad_(), dpsi.clone().requires_grad_()
    loss = kef_loss(psi_[:n * n_scales].reshape(-1, n, 1), dpsi_.reshape(-1, n, 1), OBJECTIVES[rhs],
                    eigenvalue, 1.0, perm, bound=BOUNDS[rhs])
    if pairs:
        loss = loss + pair_weight * pair_loss(*psi_[n * n_scales:].reshape(2, n), t, rhs, eigenvalue, perm)
    loss.backward()
    got = loss_and_grad(psi, dpsi, rhs, eigenvalue, 1.0, perm, bound=BOUNDS[rhs], pair_weight=pair_weight,
                        t=t if pairs else None, log_scale=PAIR_LOG_SCALE)
    for g, e in zip(got, (loss, psi_.grad, dpsi_.grad)):
        torch.testing.assert_close(g, e.detach())
    without_balance = loss_and_grad(psi, dpsi, rhs, eigenvalue, 0.0, perm, bound=BOUNDS[rhs],
                                    pair_weight=pair_weight, t=t if pairs else None, log_scale=PAIR_LOG_SCALE)[0]
    assert (got[0] - without_balance > 0.5) == (shift != 0)   # the balance acts where it should



def test_fit_kefs_adam_takes_torch_adams_steps():
    from seplib._fast import FlatAdam
    a = sl.kef.mlp(2)
    b, start = copy.deepcopy(a), copy.deepcopy(a)
    ours, theirs = FlatAdam(a.parameters()), torch.optim.Adam(b.parameters())
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for step in range(30):
        lr = 1e-2 / (1 + step)  # the rate changes at every step, as fit_kef's cosine does
        for group in theirs.param_groups:
            group["lr"] = lr
        for net in (a, b):
            torch.sin(3 * net(x)).mean().backward()
        ours.step(lr)
        theirs.step()
        theirs.zero_grad()
    assert all(p.grad is None for p in a.parameters())
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    assert not torch.allclose(a[0].weight, start[0].weight, atol=1e-3)  # and they did move


def test_flat_adam_clips_the_update_after_a_sudden_jump_of_the_gradient():
    from seplib._fast import FlatAdam
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(2000, 500, generator=gen)
    steps = {}
    for clip in (1.0, None):
        w = torch.nn.Parameter(torch.zeros(500))
        opt = FlatAdam([w], clip=clip)
        for k in range(2000):   # noisy small gradients: no step is clipped
            w.grad = 1e-3 * noise[k]
            opt.step(1e-2)
        assert opt.clipped == 0
        before = w.detach().clone()
        w.grad = torch.ones(500)   # a thousand times larger, and of one sign
        opt.step(1e-2)
        steps[clip] = (w.detach() - before).square().mean().sqrt().item()
        assert opt.clipped == (1 if clip else 0)
    assert steps[1.0] == pytest.approx(1e-2, rel=1e-4)   # the update's RMS is clip times lr
    assert steps[None] > 2.5e-2                          # plain Adam's is about 3 times that
