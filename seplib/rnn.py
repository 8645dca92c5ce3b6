"""The flip-flop network: its task, its continuous-time field, and a safe checkpoint loader."""
import json
import os
from pathlib import Path

import torch
from torch import nn

from ._guards import finite_real



def _book_checkpoint(name="flipflop_gru_2d"):
    """One of the book's networks: inside the installed package (seplib/rnn_params, see
    pyproject.toml), or at the root of a source checkout (rnn_params/)."""
    here = Path(__file__).resolve().parent
    candidates = [root / "rnn_params" / name / "model.pt" for root in (here, here.parent)]
    return next((c for c in candidates if c.is_file()), candidates[-1])


BOOK_CHECKPOINT = _book_checkpoint()
# name: the arguments of `python -m seplib.flipflop` that made it (rnn_params/<name>/card.json)
BOOK_NETWORKS = {
    "flipflop_gru_2d": "--hidden 2 --seed 0",
    "flipflop_gru_64d": "--hidden 64 --seed 0",
    "flipflop2_gru_16d": "--bits 2 --hidden 16 --seed 0 --steps 2000",
    "flipflop3_gru_32d": "--bits 3 --hidden 32 --seed 0 --steps 3000",
    "flipflop3_gru_64d": "--bits 3 --hidden 64 --seed 0 --steps 3000",
    "flipflop3_rnn_32d": "--bits 3 --cell rnn --hidden 32 --seed 1 --pulse-prob 0.08 --n-steps 60 --steps 3000",
}
REGENERATE = "python -m seplib.flipflop {args} --out rnn_params/{name}/"
GATES = {"gru": 3, "rnn": 1}  # rows of weight_hh per hidden unit


class FlipFlopRNN(nn.Module):
    """``rnn`` (a one-layer ``nn.GRU`` or tanh ``nn.RNN``) and a ``linear`` read-out.

    Inputs are sequence-first, ``[T, B, n_in]``; ``forward`` returns the outputs ``[T, B, n_out]``
    and the hidden states ``[T, B, n_hidden]``.
    """

    def __init__(self, n_in=1, n_hidden=2, n_out=1, cell="gru"):
        super().__init__()
        if cell not in GATES:
            raise ValueError(f"cell must be 'gru' or 'rnn', got {cell!r}")
        self.cell = cell
        self.rnn = (nn.GRU if cell == "gru" else nn.RNN)(n_in, n_hidden)
        self.linear = nn.Linear(n_hidden, n_out)

    def forward(self, u, h0=None):
        h, _ = self.rnn(u, h0)
        return self.linear(h), h

    def step(self, u, h):
        """One recurrent update G(u, h) for ``u: [..., n_in]``, ``h: [..., n_hidden]``; ``u=None``
        is zero input, the autonomous field's case, and skips the input's product.

        Written out from the weights (the equations of ``nn.GRU``/``nn.RNN``) so that it takes any
        batch shape and can be differentiated on any device in eval mode. The biases ride in the
        products (``addmm``) and the last mix is one ``lerp``: fewer passes over the batch
        (benchmarks/gru_field.py, RESULTS.md section 6).
        """
        r = self.rnn
        rows = h.reshape(-1, h.shape[-1])
        gh = torch.addmm(r.bias_hh_l0, rows, r.weight_hh_l0.T)
        gi = r.bias_ih_l0 if u is None else torch.addmm(r.bias_ih_l0, u.reshape(-1, u.shape[-1]), r.weight_ih_l0.T)
        if self.cell == "rnn":
            return torch.tanh(gh + gi).reshape(h.shape)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        reset, update = torch.sigmoid(h_r + i_r), torch.sigmoid(h_z + i_z)
        candidate = torch.tanh(torch.addcmul(i_n, reset, h_n))
        return torch.lerp(candidate, rows, update).reshape(h.shape)   # (1 - update) candidate + update h


def gru_vector_field(model, speed=1.0, dt=1.0):
    """The autonomous continuous-time field of a flip-flop network with zero input:
    f(h) = speed * (G(0, h) - h) / dt. Takes ``[..., n_hidden]`` on any device, computes on the
    model's device and returns on the input's device and dtype."""
    for name, value in (("speed", speed), ("dt", dt)):
        number = finite_real(value)
        if number is None or number <= 0:
            raise ValueError(f"{name} must be a finite number > 0 (the card's 'field' entry has both), got {value!r}")
    if not (isinstance(model, torch.nn.Module) and hasattr(model, "step")):
        raise TypeError(f"model must be a flip-flop network (seplib.FlipFlopRNN, e.g. from "
                        f"sl.load_flipflop_gru()), got {type(model).__name__}")
    p = next(model.parameters())
    rate, n_hidden = float(speed) / float(dt), model.rnn.hidden_size

    def field(h):
        if h.shape[-1:] != (n_hidden,):
            raise ValueError(f"the network's field is {n_hidden}-dimensional (its hidden units), but was given "
                             f"states of shape {tuple(h.shape)}: give [..., {n_hidden}]")
        hm = h.to(device=p.device, dtype=p.dtype)
        return ((model.step(None, hm) - hm) * rate).to(device=h.device, dtype=h.dtype)

    return field


# ---- the task -------------------------------------------------------------------------------

def flipflop_trials(n_trials, n_steps=100, pulse_prob=0.05, generator=None, bits=1):
    """k-bit flip-flop trials (k = ``bits``): inputs ``[n_steps, n_trials, bits]``, each channel
    +-1 pulses at random times (one always at t = 0, so every memory is defined from the start),
    targets holding the sign of each channel's most recent pulse. The bits are independent, so a
    network that solves the task holds 2^k memories."""
    pulse = torch.rand(n_steps, n_trials, bits, generator=generator) < pulse_prob
    pulse[0] = True
    sign = torch.where(torch.rand(n_steps, n_trials, bits, generator=generator) < 0.5, -1.0, 1.0)
    u = torch.where(pulse, sign, torch.zeros(()))
    target = torch.empty_like(u)
    held = u[0]
    for t in range(n_steps):
        held = torch.where(pulse[t], u[t], held)
        target[t] = held
    return u, target


def flipflop_error(model, n_trials=500, n_steps=100, pulse_prob=0.05, seed=12345):
    """Fraction of time steps (and bits), on fresh trials, where an output's sign differs from
    its target. The number of bits is the network's number of inputs."""
    gen = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    u, target = flipflop_trials(n_trials, n_steps, pulse_prob, gen, bits=model.rnn.input_size)
    with torch.no_grad():
        out, _ = model(u.to(p.device, p.dtype))
    return (torch.sign(out.cpu()) != target).float().mean().item()


# ---- loading --------------------------------------------------------------------------------

def load_flipflop_gru(path=None, device="cpu", name="flipflop_gru_2d"):
    """Load a flip-flop network saved as a state_dict (``rnn.*``, ``linear.*``), raw or under
    ``"model_state_dict"``/``"state_dict"``, with ``torch.load(weights_only=True)``.

    ``path=None`` loads one of the book's networks by ``name``: ``"flipflop_gru_2d"`` (chapters
    2 and 3), ``"flipflop_gru_64d"`` (64 units), or a k-bit one (``BOOK_NETWORKS``:
    ``"flipflop3_gru_32d"`` for chapter 8, ``"flipflop2_gru_16d"``, ``"flipflop3_gru_64d"``,
    ``"flipflop3_rnn_32d"``, a tanh RNN). ``path`` may also be the folder that
    ``python -m seplib.flipflop --out`` wrote: its ``model.pt`` is loaded.

    Sizes are read from the weights. Returns the model in eval mode with gradients off. Never
    falls back to random weights: a missing or malformed file raises, saying what is wrong.
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from err
    if path is None:
        path, made_by = _book_file(name, "model.pt"), _made_by(name)
    else:
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file or folder path (str or pathlib.Path), got "
                             f"{type(path).__name__} {path!r}; path=None loads the book's network `name`")
        path = Path(path)
        if path.is_dir():
            path = path / "model.pt"
        made_by = ("give the model.pt (or its folder) that `python -m seplib.flipflop --out FOLDER` wrote, "
                   "or path=None for the book's networks")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; {made_by}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle with code in it, a text file, a truncated file ...
        raise ValueError(f"{path} is not a weights-only torch checkpoint ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''})") from err
    for key in ("model_state_dict", "state_dict"):
        if isinstance(state, dict) and key in state:
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state_dict of tensors (got {type(state).__name__})")
    model = _model_for(state, path)
    model.load_state_dict(state)
    model.to(device).eval().requires_grad_(False)
    return model


def book_card(name="flipflop_gru_2d"):
    """The JSON card of one of the book's networks (task, training, error, attractors, saddle
    and its eigenvalues, as ``python -m seplib.flipflop`` wrote them) as a dict."""
    path = _book_file(name, "card.json")
    if not path.is_file():
        raise FileNotFoundError(f"no card at {path}; {_made_by(name)}")
    return json.loads(path.read_text())


def _book_file(name, filename):
    """``filename`` (model.pt, card.json) of the book network ``name``, or ValueError for a name
    that is not one."""
    if name not in BOOK_NETWORKS:
        raise ValueError(f"no book network named {name!r}: the names are {sorted(BOOK_NETWORKS)} (a "
                         "checkpoint of your own loads with load_flipflop_gru(path=...))")
    return _book_checkpoint(name).parent / filename


def _made_by(name):
    return "the book's networks are made by: " + REGENERATE.format(args=BOOK_NETWORKS.get(name, "--hidden 2 --seed 0"),
                                                                   name=name)


def _model_for(state, path):
    """An empty FlipFlopRNN whose sizes match the weights in ``state``, or a ValueError."""
    whh, wih, wout = (state.get(k) for k in ("rnn.weight_hh_l0", "rnn.weight_ih_l0", "linear.weight"))
    if whh is None or wih is None or wout is None or whh.dim() != 2 or wih.dim() != 2 or wout.dim() != 2:
        raise ValueError(f"{path}: expected 2-D weights rnn.weight_hh_l0, rnn.weight_ih_l0 and "
                         f"linear.weight (keys found: {sorted(state)})")
    n_hidden, n_in, n_out = whh.shape[1], wih.shape[1], wout.shape[0]
    cell = {3 * n_hidden: "gru", n_hidden: "rnn"}.get(whh.shape[0])
    if cell is None:
        raise ValueError(f"{path}: rnn.weight_hh_l0 has shape {tuple(whh.shape)}, expected "
                         f"({3 * n_hidden}, {n_hidden}) for a GRU or ({n_hidden}, {n_hidden}) for a tanh RNN")
    model = FlipFlopRNN(n_in, n_hidden, n_out, cell)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise ValueError(f"{path}: missing weights {missing}, unexpected weights {extra}")
    wrong = [f"{k}: {tuple(state[k].shape)} (expected {s})" for k, s in expected.items()
             if tuple(state[k].shape) != s]
    if wrong:
        raise ValueError(f"{path}: mis-shaped weights: {'; '.join(wrong)}")
    return model
