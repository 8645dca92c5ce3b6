"""Deep Koopman eigenfunctions: the network, the objectives, the loss and ``fit_kef``.

We train psi so that  grad psi(x) . f(x) = lambda * R(psi(x))  with lambda > 0. Along a
trajectory psi then grows like exp(lambda t) away from its zero set, so a trajectory can never
cross psi = 0: the zero level set is an invariant set that splits the two basins, the separatrix.

This file is the math, read top to bottom: the network (1), the objectives (2), the loss (3),
the trajectory pairs (4), the anchor and the signs known by simulation (5), and training (6):
the recipe's objects (``Training``, ``Refinement``, ``Recipe``; where to sample is
``sampling.Sampling``), ``fit_kef`` and its loop. Its bookkeeping (the checks of its arguments,
each epoch's batches, the stop rule, the weights' average, the warnings after training) is in
``_training.py``. For the default network and the named objectives fit_kef runs the same
arithmetic through the CPU kernels of ``_fast.py``. The figures behind each default are in
benchmarks/RESULTS.md.
"""
import copy
import inspect
import math
import time
import warnings
from typing import NamedTuple

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from tqdm.auto import tqdm

from . import _fast, _training
from .flow import _nearer, settle
from ._guards import _short, as_ends, as_field, as_states, check_count, check_seed, finite_real
from .sampling import (DEFAULT_SCALES, MultiscaleGaussian, Sampling, pair_ends, sampled_expansion_rate,
                       sampled_saddles, sampling_region)

# lambda = AUTO_EIGENVALUE_RATIO * mu, mu the saddle's unstable rate. Near the separatrix psi ~
# distance^(lambda / mu): a ratio near 1 leaves psi's sign to tiny values far out, one near 0
# makes psi a step that a smooth network cannot follow. 0.4 met the targets most often.
AUTO_EIGENVALUE_RATIO = 0.4
# flow_time="auto": pairs up to 1 / (2 lambda) apart, over which psi grows by sqrt(e): long
# enough for Duffing's fast outer orbits to come back, short of the attractors.
AUTO_FLOW_TIME = 0.5
PAIR_STARTS = 2560         # trajectories per scale for the pairs; also the stop rule's probes
PAIR_LOG_SCALE = 0.1       # the standard objective's pairs compared on asinh(psi / 0.1)
SAMPLE_BLOCK = 100         # epochs whose samples (and f at them) are drawn in one call
FIELD_CHUNK = 4096         # rows per call of the field: on CPU a large batch's fresh buffers cost
                           # more than the arithmetic (benchmarks/RESULTS.md, section 6)
STOP_CHECK_EVERY = 500     # epochs between the stop rule's checks
STOP_PAIR_DISAGREEMENT = 5e-3   # at most this fraction of pairs with psi's sign differing
AVERAGE_DECAY = 0.999      # the returned psi: a running average of the weights
REFINE_STATES = 2000       # Refinement(): probes nearest psi's zero set whose basins are simulated
REFINE_EPOCHS = 1000       # Refinement(): epochs of training on with those basins' signs, at lr / 10


def default_device():
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# 1. The network ---------------------------------------------------------------------------

def mlp(dim, width=96, depth=3, radial=None):
    """The default psi: a tanh MLP  dim -> width -> ... -> 1, three hidden layers by default.

    Three layers, not two, and width 96, not 64, put the zero set closer to Duffing's and the
    curved system's separatrices (benchmarks/RESULTS.md). The output layer starts 10 times
    smaller than usual, so psi starts near 0. There psi - psi^3 ~ psi, and the squashed
    objective first learns what the standard one does (the zero set), before psi grows towards
    +-1; started large, it can settle on a one-signed psi.

    ``radial=(centre, radius)`` puts a ``Radial`` feature first: the network also sees
    |x - centre|^2 / radius^2.
    """
    layers, n_in = ([Radial(*radial)], dim + 1) if radial is not None else ([], dim)
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.Tanh()]
        n_in = width
    out = nn.Linear(n_in, 1)
    with torch.no_grad():
        out.weight.mul_(0.1)
        out.bias.zero_()
    return nn.Sequential(*layers, out)


class Radial(nn.Module):
    """x -> [x, |x - centre|^2 / radius^2]: one input that is the squared distance from a point.

    Why: in many dimensions a random direction y off the separatrix's point sees its mean
    curvature, y^T H y ~ tr(H) |y|^2 / d, so far out the separatrix bends like a function of
    the distance alone. A tanh layer narrower than d has a Hessian of rank at most its width
    and no quadratic term at bias 0; this feature gives psi that bend in one unit
    (benchmarks/RESULTS.md, section 4)."""

    def __init__(self, centre, radius):
        super().__init__()
        centre = torch.as_tensor(centre, dtype=torch.float32).flatten()
        if not (torch.isfinite(centre).all() and self.valid_radius(radius)):
            raise ValueError(f"Radial needs a finite centre and a finite radius > 0, got {_short(centre)} "
                             f"and {radius!r}")
        self.register_buffer("centre", centre)
        self.register_buffer("radius", torch.tensor(float(radius)))   # saved with the weights

    @staticmethod
    def valid_radius(radius):
        """Whether ``radius`` is a finite real number > 0 (a 0-d tensor included; True is not a length)."""
        number = finite_real(radius)
        return number is not None and number > 0

    def forward(self, x):
        return self.with_tangent(x, x[:0])[0]

    def with_tangent(self, x, v):
        """The feature at x and its tangent along v (the first ``len(v)`` rows)."""
        offset = x - self.centre
        q = offset.square().sum(-1, keepdim=True) / self.radius**2
        dq = 2 * (offset[:len(v)] * v).sum(-1, keepdim=True) / self.radius**2
        return torch.cat((x, q), dim=-1), torch.cat((v, dq), dim=-1)


class KEF(nn.Module):
    """A trained eigenfunction: ``kef(x)`` maps ``Tensor[..., d]`` to ``Tensor[...]``.

    ``net`` is the underlying module (``[N, d] -> [N, 1]``); ``loss_history_`` holds the loss of
    every epoch, ``fit_seconds_`` the training time, ``mean_`` the centre of the samples and
    ``attractors_`` ``[2, d]``, the a and b it separates (``smallest_flip(..., target=)``).
    """

    def __init__(self, net, dim, rhs="standard", eigenvalue=1.0):
        super().__init__()
        self.net, self.dim, self.rhs, self.eigenvalue = net, dim, rhs, eigenvalue
        self.loss_history_ = []
        self.fit_seconds_ = None
        self.mean_ = None
        self.attractors_ = None

    def forward(self, x):
        """psi at ``x`` (``[..., d]``), computed on the network's device, returned on x's."""
        p = next(self.net.parameters())
        x = as_states(x, "x", self.dim)
        out = self.net(x.reshape(-1, self.dim).to(device=p.device, dtype=p.dtype))
        return out.reshape(x.shape[:-1]).to(device=x.device, dtype=x.dtype)


def directional_derivative(net, x, v):
    """psi(x) and grad psi(x) . v in one forward pass (forward-mode AD): the Jacobian is never
    formed. Only the first ``len(v)`` rows of x carry a tangent (fit_kef's pairs need psi alone).
    The default tanh MLP takes the written-out twin, ``_fast.tanh_mlp_tangent``."""
    if len(v) > len(x):
        raise ValueError(f"v has {len(v)} rows, more than x's {len(x)}")
    if isinstance(net, nn.Sequential) and len(net) > 1 and isinstance(net[0], Radial):
        (x, v), net = net[0].with_tangent(x, v), net[1:]
    if _fast.is_tanh_mlp(net):
        return _fast.tanh_mlp_tangent(net, x, v)
    tangent = torch.cat((v, v.new_zeros(len(x) - len(v), v.shape[-1])))
    with fwAD.dual_level():
        psi, dpsi = fwAD.unpack_dual(net(fwAD.make_dual(x, tangent)))
    return psi, dpsi[:len(v)]


# 2. The objectives -------------------------------------------------------------------------

OBJECTIVES = {
    "standard": lambda psi: psi,              # R(psi) = psi
    "squashed": lambda psi: psi - psi**3,     # R(psi) = psi - psi^3: psi -> +-1 at the attractors
}

# The range each objective's wanted solutions live in. Along a trajectory psi - psi^3 has fixed
# points 0 and +-1, so a psi beyond +-1 (shrinking back to +-1 along trajectories) solves the
# squashed equation too, with its zero set anywhere. A penalty on |psi| > 1 rules that out.
BOUNDS = {"standard": None, "squashed": 1.0}


def resolve_rhs(rhs):
    """``"standard"``, ``"squashed"`` or a callable R(psi); a string is looked up, never evaluated."""
    if callable(rhs):
        return rhs
    if isinstance(rhs, str) and rhs in OBJECTIVES:
        return OBJECTIVES[rhs]
    raise ValueError(f"rhs must be 'standard', 'squashed' or a callable R(psi), got {rhs!r}")


# 3. The loss -------------------------------------------------------------------------------

def kef_loss(psi, dpsi, rhs, eigenvalue, balance_weight, perm, min_side=0.2, bound=None):
    """The KEF loss on a batch laid out as ``[n_scales, n, 1]``.

    Per scale, the residual of  grad psi . f / lambda = R(psi)  is divided by the same residual
    with R(psi) taken at shuffled points: a constant or zero psi scores 1, not 0, so the trivial
    solutions do not win.

    The balance term stops psi from keeping one sign. The classic form, |mean psi / std psi| per
    scale, also pulls the zero set towards the middle of each Gaussian, which moves it off the
    separatrix. Ours acts only while one sign holds less than ``min_side`` of the samples, so it
    vanishes once psi takes both signs and leaves the zero set where the residual puts it.

    With a ``bound`` (the squashed objective, see ``BOUNDS``) |psi| > bound is penalised, and
    the balance weighs each sign by its mass, the sum of |psi|: a squashed psi tends to +-1 in
    both basins, and psi = 0 on a whole basin also solves the equation, which a soft count of
    signs takes for half positive. A standard psi grows at each attractor's own rate, so its
    masses need not match; there we count signs.
    """
    lhs = dpsi / eigenvalue
    r = rhs(psi)
    residual = ((lhs - r) ** 2).mean(dim=(1, 2))
    shuffled = ((lhs - r[:, perm]) ** 2).mean(dim=(1, 2))
    eig = (residual / shuffled).mean()
    if bound is None:
        positive = torch.sigmoid(10 * psi / psi.std()).mean()   # soft fraction of psi > 0
        minority = torch.minimum(positive, 1 - positive)
        beyond = 0.0
    else:
        positive, negative = torch.relu(psi).mean(), torch.relu(-psi).mean()
        minority = torch.minimum(positive, negative) / (positive + negative + 1e-12)
        beyond = (torch.relu(psi.abs() - bound) ** 2).mean()
    balance = torch.relu(min_side - minority) / min_side
    return eig + balance_weight * balance + beyond


# 4. The trajectory pairs -------------------------------------------------------------------

def carry(rhs, eigenvalue, psi, t, steps=8):
    """Where psi is after time ``t`` along a trajectory if  dpsi/dt = eigenvalue * R(psi)  (which
    is what grad psi . f = lambda R(psi) says): in closed form for "standard" and "squashed",
    by RK4 in ``steps`` steps for a callable R. Differentiable in psi."""
    t = t.reshape(psi.shape)
    if rhs == "standard":
        return psi * torch.exp(eigenvalue * t)
    if rhs == "squashed":   # psi(t) = psi e / sqrt(1 - psi^2 + psi^2 e^2), e = exp(lambda t)
        e = torch.exp(eigenvalue * t)
        return psi * e / torch.sqrt(1 + psi**2 * (e**2 - 1))
    h = eigenvalue * t / steps
    for _ in range(steps):
        k1 = rhs(psi)
        k2 = rhs(psi + h / 2 * k1)
        k3 = rhs(psi + h / 2 * k2)
        k4 = rhs(psi + h * k3)
        psi = psi + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return psi


def pair_loss(psi_start, psi_end, t, rhs, eigenvalue, perm):
    """The same equation over a finite time, on pairs of states (x(0), x(t)) of a trajectory:
    psi(x(t)) must be psi(x(0)) carried for time t (``carry``). Divided, like the residual, by
    its value with the starts shuffled, so a constant psi scores 1.

    The standard objective's pairs are compared on asinh(psi / PAIR_LOG_SCALE), like psi near 0
    and like log|psi| far from it: a standard psi grows without bound towards the attractors,
    and there the gaps of psi itself would swamp those near the separatrix."""
    carried, shuffled = carry(rhs, eigenvalue, psi_start, t), carry(rhs, eigenvalue, psi_start[perm], t)
    if rhs == "standard":   # a name; a callable R is compared as it is
        psi_end, carried, shuffled = (torch.asinh(v / PAIR_LOG_SCALE) for v in (psi_end, carried, shuffled))
    return ((psi_end - carried) ** 2).mean() / ((psi_end - shuffled) ** 2).mean()


# 5. The attractors' anchor, and signs known by simulation -----------------------------------

def anchor_loss(psi_a, psi_b):
    """psi one sign near attractor a and the other near b:  1 - |mean psi_b - mean psi_a| /
    (mean |psi_a| + mean |psi_b|),  0 exactly then, whatever psi's scale, and up to 2 otherwise.

    Why it is needed: psi times any function constant along trajectories is a KEF with the same
    eigenvalue, so the equation alone allows zero sets inside a basin (in many dimensions the
    network prefers such a psi: z_i |phi|^(lambda + r_i) is smoother than |phi|^lambda). But every
    trajectory of a basin ends near its attractor and psi keeps its sign along trajectories: one
    sign near the attractor is one sign on the whole basin."""
    gap = (psi_b.mean() - psi_a.mean()).abs()
    return 1 - gap / (psi_a.abs().mean() + psi_b.abs().mean() + 1e-12)


def sign_loss(psi, y, softness=0.1):
    """psi's sign held to known basins ``y`` (+1 or -1 per state):  softness x mean softplus(-y
    psi / w),  w = softness x mean |psi|. It is about 0 once each psi has its basin's sign by a
    margin of w, whatever psi's scale, and it only pushes where psi is near 0 or wrong."""
    w = softness * psi.detach().abs().mean() + 1e-12
    return softness * torch.nn.functional.softplus(-y * psi / w).mean()


def zero_set_labels(net, field, probes, n_scales, attractors, n=REFINE_STATES, T=60.0, sheet=None):
    """The ``n`` probes nearest psi's zero set and the basin each is in, found by simulation:
    ``(x [m, d], y [m])``, y = +1 where the state goes to the attractor at which psi is
    positive, -1 where it goes to the other. ``probes`` are ``n_scales`` equal blocks, one per
    scale; each gives ``n / n_scales`` states, nearest by |psi| / |grad psi| (the distance to
    the zero set, to first order). States whose trajectories leave the floats are dropped.

    Far from the saddle the equation barely constrains psi's sign: psi is tiny near its zero
    set there, and so is the residual of a zero set in the wrong place. A few thousand
    trajectories from exactly there, psi's weakest places, say where it is wrong.

    ``sheet`` (``Sheet``: every memory and the side of the boundary each lies on, +1 with b,
    -1 with a, 0 unknown): where there are more memories than a and b (``basin_map``), each state
    is simulated until it settles at one of them, and labelled by that memory's side; states that
    settle at a memory of unknown side are dropped."""
    a, b = torch.as_tensor(attractors, dtype=probes.dtype, device=probes.device)
    x = probes.detach().clone().requires_grad_()
    psi = net(x).flatten()
    slope = torch.autograd.grad(psi.sum(), x)[0].norm(dim=-1)
    nearness = (psi.detach().abs() / (slope + 1e-12)).view(n_scales, -1)
    k = max(1, min(n // n_scales, nearness.shape[1]))
    picks = nearness.topk(k, dim=1, largest=False).indices
    x = probes[(picks + torch.arange(n_scales, device=picks.device)[:, None] * nearness.shape[1]).flatten()]
    try:
        if sheet is None:
            to_b, end = _nearer(field, x, a, b, T)
        else:
            label, end = settle(field, x, sheet.memories.to(probes), T, relative_tol=0.5)
            side = torch.where(label >= 0, sheet.sides.to(label.device)[label.clamp(min=0)], 0)
            x, end, to_b = x[side != 0], end[side != 0], side[side != 0] > 0
    except FloatingPointError as err:   # integrate's: a trajectory blew up
        raise FloatingPointError(f"refine: integrating the field from the states nearest psi's zero set "
                                 f"failed ({err.__cause__}): the field is NaN, inf or too stiff along their "
                                 "trajectories; check f there, or pass a Recipe with refinement=None") from err
    keep = torch.isfinite(end).all(dim=-1)
    if not keep.any():
        raise FloatingPointError("refine: every trajectory from the states nearest psi's zero set left the "
                                 "floats (inf or NaN): check the field there, or pass a Recipe with refinement=None")
    with torch.no_grad():
        b_positive = (net(b[None]) > net(a[None])).item()
    y = torch.where(to_b == b_positive, 1.0, -1.0).to(probes.dtype)
    return x[keep], y[keep]


# 6. Training -------------------------------------------------------------------------------

def auto_eigenvalue(field, sampler, seed=0, device="cpu"):
    """lambda = AUTO_EIGENVALUE_RATIO * mu, with mu the unstable rate of the fastest saddle
    found among 256 points of each of the sampler's scales (``sampled_saddles``)."""
    return _auto_settings(field, sampler, False, True, seed, device)[1]


def _auto_settings(field, sampler, centre, eigenvalue, seed, device):
    """``(sampler, lambda, saddle)``: the sampler recentred on the saddles found among its samples
    (if ``centre``), lambda from the fastest one's rate (if ``eigenvalue``; else None), and that
    saddle (None if none was found). Where Newton's method finds no saddle, the sampler stays and
    mu is the flow's largest expansion rate over the samples (``sampled_expansion_rate``), with
    a warning."""
    saddles, rates = sampled_saddles(field, sampler, seed, device)
    if len(saddles) == 0:
        mu = sampled_expansion_rate(field, sampler, seed, device) if eigenvalue else None  # raises if none
        kept = [f"the samples stay centred at {_short(sampler.mean)}"] if centre else []
        if eigenvalue:
            kept.append("lambda comes from the flow's largest expansion rate over them, which "
                        "overestimates the saddle's rate where some other region pulls states apart faster")
        warnings.warn("fit_kef found no saddle among its samples (Newton's method on f = 0 from the "
                      f"slowest of them reached none with one unstable direction), so {' and '.join(kept)}. "
                      "Pass a Recipe whose Sampling has centre= (a point on the separatrix, e.g. "
                      "sl.separatrix_point(field, a, b)), and eigenvalue= yourself", RuntimeWarning, stacklevel=4)
        return sampler, None if mu is None else AUTO_EIGENVALUE_RATIO * mu, None
    if centre:
        sampler = MultiscaleGaussian(sampler.dim, sampler.scales, saddles.mean(dim=0), sampler.cov, sampler.segment)
    mu = rates[0].item() if eigenvalue else None
    return sampler, None if mu is None else AUTO_EIGENVALUE_RATIO * mu, saddles[0]


def _extra_losses(psi, b, anchor_weight, y):
    """The anchor (on 2 b rows, when ``anchor_weight`` is given) and the sign loss (on the b rows
    after them, when ``y`` is given): the rows after the samples and the pairs."""
    loss, at = 0.0, 0
    if anchor_weight is not None:
        loss, at = anchor_weight * anchor_loss(*psi[:2 * b].reshape(2, b)), 2 * b
    if y is not None:
        loss = loss + sign_loss(psi[at:at + b].flatten(), y)
    return loss


def _train_step(net, rhs, eigenvalue, balance_weight, pair_weight, anchor_weight, bound, x, fx, perm, t, y):
    """One forward and backward pass; returns the loss. A named objective takes the written-out
    loss gradient (``_fast.loss_and_grad``); a callable R goes through autograd, and so do the
    anchor and the sign loss (``_extra_losses``)."""
    psi, dpsi = directional_derivative(net, x, fx)
    n, b = len(dpsi), len(perm)
    used = n + (2 * b if t is not None else 0)   # rows of the samples and the pairs
    if isinstance(rhs, str):
        loss, g_psi, g_dpsi = _fast.loss_and_grad(psi.detach()[:used], dpsi.detach(), rhs, eigenvalue,
                                                  balance_weight, perm, bound=bound, pair_weight=pair_weight,
                                                  t=t, log_scale=PAIR_LOG_SCALE)
        if anchor_weight is not None or y is not None:
            extra = psi.detach()[used:].requires_grad_()
            more = _extra_losses(extra, b, anchor_weight, y)
            more.backward()
            loss, g_psi = loss + more.detach(), torch.cat((g_psi, extra.grad))
        torch.autograd.backward((psi, dpsi), (g_psi, g_dpsi))
        return loss.item()
    loss = kef_loss(psi[:n].reshape(-1, b, 1), dpsi.reshape(-1, b, 1), rhs, eigenvalue, balance_weight, perm)
    if t is not None:
        loss = loss + pair_weight * pair_loss(*psi[n:used].reshape(2, b), t, rhs, eigenvalue, perm)
    if anchor_weight is not None or y is not None:
        loss = loss + _extra_losses(psi[used:], b, anchor_weight, y)
    loss.backward()
    return loss.item()


class Training:
    """How fit_kef trains: ``epochs`` Adam steps of ``batch_size`` samples per group, the
    learning rate decaying from ``lr`` to ``lr / 100`` (cosine); ``batch_size`` trajectory pairs
    (x(0), x(t)) per step, t up to ``flow_time`` ("auto": 1 / (2 lambda); None: no pairs),
    weighted ``pair_weight``; the balance term weighted ``balance_weight``; the anchor (psi one
    sign near a, the other near b, ``anchor_loss``) weighted ``anchor_weight`` (None: off).
    ``tol``: stop once psi changed sign at fewer than this fraction of the probes since the
    last check (``_training.StopRule``, every 500 epochs from epoch 1000); None: run every epoch.
    ``Training.for_rhs(rhs)`` gives the default for an objective. Figures: benchmarks/RESULTS.md,
    section 4."""

    FIELDS = ("epochs", "batch_size", "lr", "tol", "pair_weight", "flow_time", "balance_weight", "anchor_weight")

    def __init__(self, epochs=4300, batch_size=192, lr=1e-2, tol=None, pair_weight=1.0, flow_time="auto",
                 balance_weight=1.0, anchor_weight=None):
        flow_time, tol = _training.check_training(epochs, batch_size, lr, tol, pair_weight, flow_time,
                                                  balance_weight, anchor_weight)
        self.epochs, self.batch_size, self.lr, self.tol = int(epochs), int(batch_size), float(lr), tol
        self.pair_weight, self.flow_time, self.balance_weight = float(pair_weight), flow_time, float(balance_weight)
        self.anchor_weight = None if anchor_weight is None else float(anchor_weight)

    @classmethod
    def for_rhs(cls, rhs):
        """The default for an objective: the same time either way, a step on twice the batch
        costing less than two (standard 4300 x 192, squashed and a callable R 8600 x 96)."""
        return cls() if rhs == "standard" else cls(epochs=8600, batch_size=96)

    def replace(self, **changes):
        """A copy with some settings changed: ``training.replace(epochs=2000)``."""
        unknown = set(changes) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"Training has no setting {sorted(unknown)}; it has {list(self.FIELDS)}")
        return Training(**({k: getattr(self, k) for k in self.FIELDS} | changes))

    def __repr__(self):
        return _rows("Training", [(k, getattr(self, k)) for k in self.FIELDS])


class Refinement:
    """After training, the ``states`` probe samples nearest psi's zero set are simulated to a
    or b, and training goes on ``epochs`` more epochs from lr / 10 with their signs held
    (``zero_set_labels``, ``sign_loss``): far from the saddle the equation barely sees where
    the zero set is, and a few thousand trajectories tell."""

    def __init__(self, states=REFINE_STATES, epochs=REFINE_EPOCHS):
        check_count(states, "states")
        check_count(epochs, "epochs")
        self.states, self.epochs = int(states), int(epochs)

    def __repr__(self):
        return _rows("Refinement", [("states", self.states), ("epochs", self.epochs)])


def _rows(name, rows):
    return name + "\n" + "\n".join(f"  {k:<15} {v}" for k, v in rows)


class Recipe:
    """Everything fit_kef does besides the user's settings: where to sample (``Sampling``;
    "auto": ``sampling_region(field, a, b)``), how to train (``Training``; "auto":
    ``Training.for_rhs(rhs)``), how to refine (``Refinement``; None: not at all) and the network
    (``model``: a module mapping [N, d] to [N, 1], trained in place; None: ``mlp``). ``print(recipe)``
    shows it. The default holds from d = 2 to 128 (benchmarks/RESULTS.md, section 4);
    ``Recipe.low_dim()`` is the switch for one to three dimensions."""

    def __init__(self, sampling="auto", training="auto", refinement=Refinement(), model=None):
        if not (sampling == "auto" if isinstance(sampling, str) else isinstance(sampling, Sampling)):
            raise ValueError(f"sampling must be 'auto' or a seplib.Sampling, got {sampling!r}")
        if not (training == "auto" if isinstance(training, str) else isinstance(training, Training)):
            raise ValueError(f"training must be 'auto' or a seplib.Training, got {training!r}")
        if refinement is not None and not isinstance(refinement, Refinement):
            raise ValueError(f"refinement must be None or a seplib.Refinement, got {refinement!r}")
        if model is not None and not isinstance(model, nn.Module):
            raise ValueError(f"model must be None or a torch.nn.Module mapping [N, d] to [N, 1], got "
                             f"{type(model).__name__}")
        self.sampling, self.training, self.refinement, self.model = sampling, training, refinement, model

    @classmethod
    def low_dim(cls, scales=DEFAULT_SCALES, **training):
        """The switch for one to three dimensions: isotropic Gaussians N(saddle, s I), s in
        ``scales``, around the saddle found from samples around the origin; 5000 epochs of 96 at
        lr 3e-3, pairs weighted 10, stopped once the zero set settles (tol 0.5%); no segment
        group, radial input or refinement. ``training`` changes its ``Training`` (flow_time=None,
        ...). Why the default is not used in 2-D: benchmarks/RESULTS.md, section 7."""
        settings = dict(epochs=5000, batch_size=96, lr=3e-3, tol=5e-3, pair_weight=10.0) | training
        return cls(Sampling("auto", "identity", scales), Training(**settings), None)

    def __repr__(self):
        parts = [("sampling", "sampling_region(field, a, b)" if self.sampling == "auto" else self.sampling),
                 ("training", "Training.for_rhs(rhs)" if self.training == "auto" else self.training),
                 ("refinement", self.refinement), ("model", "mlp (tanh, 3 x 96)" if self.model is None
                                                   else type(self.model).__name__)]
        return "Recipe\n" + "\n".join(f"  {k}: " + str(v).replace("\n", "\n  ") for k, v in parts)


def fit_kef(field, a, b, *, rhs="standard", eigenvalue="auto", epochs=None, seed=0, device=None, progress=True,
            recipe=None):
    """Train psi for the separatrix between attractors ``a`` and ``b`` of ``field`` (a callable
    on ``Tensor[..., d]``; d is ``len(a)``), in any dimension. Returns a ``KEF``.

    ``rhs``: "standard" (R(psi) = psi), "squashed" (psi - psi^3) or a callable R.
    ``eigenvalue``: lambda > 0; "auto" is 0.4 times the saddle's unstable rate.
    ``epochs``: None keeps the recipe's. ``device``: None is CUDA when present.
    ``recipe``: a ``Recipe`` (where to sample, how to train and refine, the network); None is
    ``Recipe()``: ``sampling_region(field, a, b)``, ``Training.for_rhs(rhs)``, ``Refinement()``.

    Each epoch samples every group of the region and takes one Adam step on the loss: the
    residual of the equation (``kef_loss``), trajectory pairs (``pair_loss``), the balance of
    signs, and, after training, psi's sign at simulated states near its zero set
    (``Refinement``). psi gets the running average of the weights. It warns where psi finds no
    separatrix, never settles (with a stop rule), or does not split the saddle's two attractors.
    """
    return _fit(field, a, b, rhs, eigenvalue, epochs, seed, device, progress, recipe)


class Sheet(NamedTuple):
    """What ``basin_map`` tells ``_fit`` about a boundary that several pairs of memories share:
    every memory ``[k, d]``, the side of the boundary each lies on (``sides [k]``: +1 with b, -1
    with a, 0 unknown), and ``probes`` (``[groups * n, d]``, ``groups`` blocks) around the
    other pairs' saddles, whose states nearest psi's zero set the refinement simulates too."""
    memories: torch.Tensor
    sides: torch.Tensor
    probes: torch.Tensor
    groups: int


def _fit(field, a, b, rhs, eigenvalue, epochs, seed, device, progress, recipe, callback=None, run_all=False,
         sheet=None):
    """fit_kef, and with ``callback(epoch, kef)`` after every step (which sees the step's weights)
    and, with ``run_all``, no stop rule; ``sheet``: where there are more memories than a and b
    (``basin_map``), the refinement simulates to all of them, near every pair of the sheet."""
    start = time.perf_counter()
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be None or a seplib.Recipe, got {type(recipe).__name__}")
    resolve_rhs(rhs)   # a name it knows, or a callable
    eigenvalue = _training.check_eigenvalue(eigenvalue)
    check_seed(seed)
    a, b = as_ends(a, b, torch.float32)
    dim = len(a)
    training = Training.for_rhs(rhs) if recipe.training == "auto" else recipe.training
    if epochs is not None or run_all:
        training = training.replace(epochs=training.epochs if epochs is None else epochs,
                                    tol=None if run_all else training.tol)
    try:
        device = torch.device(device) if device is not None else default_device()
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    field = as_field(field, dim)
    _training.check_field_at_ends(field, a, b)
    sampling = sampling_region(field, a, b) if recipe.sampling == "auto" else recipe.sampling
    radius = sampling.radius(a, b)
    if radius is not None and recipe.model is not None:
        raise ValueError("the Sampling's radial feature shapes the default network; with a model of your own "
                         "put a seplib.kef.Radial first in it and set Sampling(radial=None)")
    sampler = sampling.sampler(a, b)
    field = _training.check_field(field, sampler, device)
    centre, saddle = isinstance(sampling.centre, str), None
    if eigenvalue == "auto" and sampling.rate is not None:
        eigenvalue = AUTO_EIGENVALUE_RATIO * sampling.rate
    if centre or eigenvalue == "auto":
        sampler, auto, saddle = _auto_settings(field, sampler, centre, eigenvalue == "auto", seed, device)
        eigenvalue = auto if eigenvalue == "auto" else eigenvalue
    probes = sampler.sample(PAIR_STARTS, torch.Generator().manual_seed(seed + 2), device=device).reshape(-1, dim)
    pairs = None
    if training.flow_time is not None:   # (which probe each pair starts from, its end, t)
        longest = AUTO_FLOW_TIME / eigenvalue if training.flow_time == "auto" else training.flow_time
        pairs = pair_ends(field, probes, longest)
    model = recipe.model
    if model is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = mlp(dim, radial=None if radius is None else (sampler.mean, radius))
    net = model.to(device)
    _training.check_model(net, dim, device)
    kef = KEF(net, dim, rhs, float(eigenvalue))
    kef.mean_ = sampler.mean.clone()
    kef.attractors_ = torch.stack((a, b))

    ends = torch.stack((a, b)).double()
    near = _training.near_attractors(None if training.anchor_weight is None else ends, sampler, device)
    step_args = (rhs, eigenvalue, training.balance_weight, training.pair_weight, training.anchor_weight,
                 BOUNDS[rhs] if isinstance(rhs, str) else None)
    name = f"KEF ({rhs if isinstance(rhs, str) else 'custom'})"

    def batches(epochs, seed, labelled=None):
        return _training.Batches(field, sampler, probes, pairs, training.batch_size, epochs, seed, device,
                                 SAMPLE_BLOCK, FIELD_CHUNK, near, labelled)

    stop = _training.StopRule(probes, pairs, training.tol, STOP_CHECK_EVERY, STOP_PAIR_DISAGREEMENT)
    stopped = _train(net, kef, batches(training.epochs, seed), training.epochs, training.lr, step_args, stop,
                     callback, progress, name)
    if recipe.refinement is not None:
        refine = recipe.refinement
        labelled = zero_set_labels(net, field, probes, sampler.groups, ends.to(probes), refine.states, sheet=sheet)
        if sheet is not None and sheet.groups:
            more = zero_set_labels(net, field, sheet.probes.to(probes), sheet.groups, ends.to(probes),
                                   refine.states, sheet=sheet)
            labelled = tuple(torch.cat(pair) for pair in zip(labelled, more))
        no_stop = _training.StopRule(probes, pairs, None, STOP_CHECK_EVERY, STOP_PAIR_DISAGREEMENT)
        _train(net, kef, batches(refine.epochs, seed + 3, labelled), refine.epochs, training.lr / 10, step_args,
               no_stop, callback, progress, name + " refined")
    if not _training.warn_if_one_signed(net, probes):
        if saddle is not None:
            _training.warn_if_ends_not_split(net, field, saddle, sampler)
        else:   # the recipe knew the saddle: a and b themselves must take opposite signs
            _training.warn_if_not_split(net, ends, sampler, "the attractors a and b", stacklevel=4)
        if not stopped:
            stop.warn_unsettled(net, training.epochs)
    kef.fit_seconds_ = time.perf_counter() - start   # the checks above included
    return kef


def _train(net, kef, batches, epochs, lr, step_args, stop, callback, progress, name):
    """``epochs`` Adam steps (``_train_step``) from a fresh optimiser, the learning rate decaying
    from ``lr`` to ``lr / 100`` (cosine); the net ends with the running average of its weights.
    Returns whether the stop rule ended it early."""
    opt = _fast.FlatAdam(net.parameters())
    average, done = _training.Average(opt.flat, AVERAGE_DECAY), len(kef.loss_history_)
    bar = tqdm(range(epochs), desc=name, disable=not progress, mininterval=0.5)
    net.train()
    stopped = False
    for epoch in bar:
        loss = _train_step(net, *step_args, *batches(epoch))
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss} at epoch {done + epoch}: training "
                                     "diverged; lower lr or the eigenvalue, or shrink the scales")
        opt.step(lr / 100 + (lr - lr / 100) * (1 + math.cos(math.pi * epoch / epochs)) / 2)
        average.update(opt.steps)
        kef.loss_history_.append(loss)
        if epoch % 50 == 0:
            bar.set_postfix(loss=f"{loss:.4f}")
        if callback is not None:
            callback(done + epoch + 1, kef)
        if stop.due(epoch):
            with average.swapped_in():   # the check looks at the psi fit_kef returns
                if stop.settled(net):
                    stopped = True
                    break
    opt.flat.copy_(average.value)   # psi is the averaged weights
    net.eval()
    return stopped


def fit_kef_snapshots(field, a, b, at_epochs, **fit_kw):
    """Train once for ``max(at_epochs)`` epochs, with no early stop, and return a frozen copy of
    psi at each of ``at_epochs``: one training shows how the zero set settles. The last is the
    returned psi (averaged weights, after the recipe's refinement if it has one); the others
    have the weights of their epoch. ``fit_kw`` are fit_kef's keyword arguments but epochs."""
    at = sorted(set(int(e) for e in at_epochs))
    copies = {}

    def keep(epoch, kef):
        if epoch in at:
            copies[epoch] = copy.deepcopy(kef).eval()

    settings = {k: p.default for k, p in inspect.signature(fit_kef).parameters.items()
                if p.kind is p.KEYWORD_ONLY and k != "epochs"}
    unknown = set(fit_kw) - set(settings)
    if unknown:
        raise TypeError(f"fit_kef_snapshots takes fit_kef's keyword arguments but epochs, got {sorted(unknown)}")
    settings |= fit_kw
    final = _fit(field, a, b, settings["rhs"], settings["eigenvalue"], at[-1], settings["seed"], settings["device"],
                 settings["progress"], settings["recipe"], callback=keep, run_all=True)
    return [copies[e] for e in at[:-1]] + [final]
