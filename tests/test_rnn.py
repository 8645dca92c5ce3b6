import json
import pickle

import pytest
import torch

import seplib as sl
from seplib.rnn import BOOK_CHECKPOINT, FlipFlopRNN, flipflop_error

CARD = json.loads((BOOK_CHECKPOINT.parent / "card.json").read_text())


def test_save_and_load_round_trip(tmp_path):
    model = FlipFlopRNN(1, 3, 1)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    loaded = sl.load_flipflop_gru(tmp_path / "m.pt")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


@pytest.mark.parametrize("wrap", ["model_state_dict", "state_dict"])
def test_wrapped_state_dicts_load(tmp_path, wrap):
    model = FlipFlopRNN(2, 64, 3)
    torch.save({wrap: model.state_dict(), "epoch": 3}, tmp_path / "m.pt")
    loaded = sl.load_flipflop_gru(tmp_path / "m.pt")
    assert (loaded.rnn.input_size, loaded.rnn.hidden_size, loaded.linear.out_features) == (2, 64, 3)


def test_missing_file_names_the_path_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt.*python -m seplib\.flipflop"):
        sl.load_flipflop_gru(tmp_path / "nope.pt")


def test_the_folder_that_flipflop_writes_loads_and_a_non_path_is_named(tmp_path):
    model = FlipFlopRNN(1, 3, 1)
    torch.save(model.state_dict(), tmp_path / "model.pt")   # as `python -m seplib.flipflop --out` does
    loaded = sl.load_flipflop_gru(tmp_path)
    assert torch.equal(loaded.rnn.weight_hh_l0, model.rnn.weight_hh_l0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty.model\.pt.*--out FOLDER"):
        sl.load_flipflop_gru(tmp_path / "empty")
    for bad in (1.0, ["m.pt"]):
        with pytest.raises(ValueError, match="path must be a file or folder path"):
            sl.load_flipflop_gru(bad)


class Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_not_a_checkpoint_and_pickled_code_are_refused(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a weights-only torch checkpoint"):
        sl.load_flipflop_gru(tmp_path / "text.pt")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"rnn.weight_hh_l0": Evil()}, f, protocol=2)   # torch.save's protocol
    with pytest.raises(ValueError, match="not a weights-only torch checkpoint"):
        sl.load_flipflop_gru(tmp_path / "evil.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="does not hold a state_dict"):
        sl.load_flipflop_gru(tmp_path / "list.pt")


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("linear.bias"), r"missing weights \['linear.bias'\]"),
    (lambda s: s.update(extra=torch.zeros(1)), r"unexpected weights \['extra'\]"),
    (lambda s: s.update({"linear.bias": torch.zeros(5)}), r"mis-shaped weights: linear.bias: \(5,\)"),
    (lambda s: s.update({"rnn.weight_hh_l0": torch.zeros(7, 2)}), r"rnn.weight_hh_l0 has shape \(7, 2\)"),
    (lambda s: s.pop("rnn.weight_ih_l0"), "expected 2-D weights"),
])
def test_malformed_weights_are_refused(tmp_path, edit, message):
    state = FlipFlopRNN(1, 2, 1).state_dict()
    edit(state)
    torch.save(state, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=message):
        sl.load_flipflop_gru(tmp_path / "m.pt")


def test_vector_field_takes_any_batch_shape_and_matches_one_gru_step():
    model = sl.load_flipflop_gru()
    field = sl.gru_vector_field(model, speed=6.0, dt=0.5)
    h = torch.randn(3, 5, 2, dtype=torch.float64)
    out = field(h)
    assert out.shape == h.shape and out.dtype == torch.float64
    step, _ = model.rnn(torch.zeros(1, 15, 1), h.reshape(1, 15, 2).float())
    expected = 6.0 * (step.reshape(3, 5, 2).double() - h) / 0.5
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_step_matches_the_torch_cell_with_input_and_without(cell):
    torch.manual_seed(0)
    model = sl.FlipFlopRNN(n_in=3, n_hidden=5, cell=cell)
    u, h = torch.randn(4, 6, 3), torch.randn(4, 6, 5)
    out, _ = model.rnn(u.reshape(1, 24, 3), h.reshape(1, 24, 5))
    torch.testing.assert_close(model.step(u, h), out.reshape(4, 6, 5))
    torch.testing.assert_close(model.step(None, h), model.step(torch.zeros_like(u), h))


@pytest.mark.parametrize("kw", [{"speed": 0.0}, {"dt": float("nan")}, {"speed": -1.0}])
def test_vector_field_refuses_a_speed_or_step_that_is_not_positive(kw):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        sl.gru_vector_field(sl.load_flipflop_gru(), **kw)


def test_committed_checkpoint_is_bistable_and_solves_the_task():
    model = sl.load_flipflop_gru()
    assert flipflop_error(model) < CARD["error_threshold"]
    field = sl.gru_vector_field(model, speed=CARD["field"]["speed"], dt=CARD["field"]["dt"])
    attractors = sl.find_attractors(field, 2, n_starts=256, spread=2**0.5)
    assert len(attractors) == 2
    torch.testing.assert_close(attractors, torch.tensor(CARD["attractors"]), atol=1e-3, rtol=0)
    point = sl.separatrix_point(field, attractors[0], attractors[1])
    saddle, eig = sl.find_saddle(field, point, attractors[0], attractors[1])
    assert (eig.real > 0).sum() == 1 and (eig.real < 0).sum() == 1  # one unstable direction
    torch.testing.assert_close(saddle, torch.tensor(CARD["saddle"]), atol=1e-3, rtol=0)


def test_the_64_unit_network_keeps_its_memories_on_slow_manifolds():
    model = sl.load_flipflop_gru(name="flipflop_gru_64d")
    card = json.loads((BOOK_CHECKPOINT.parent.parent / "flipflop_gru_64d" / "card.json").read_text())
    assert model.rnn.hidden_size == 64 and flipflop_error(model) < card["error_threshold"]
    field = sl.gru_vector_field(model, speed=card["field"]["speed"], dt=card["field"]["dt"])
    a, b = torch.tensor(card["attractors"])
    assert len(card["saddle_eigenvalues"]) == 64
    assert sum(re > 0 for re, _ in card["saddle_eigenvalues"]) == 1    # one unstable direction
    x = sl.segment_clouds(a, b, n=200)
    strict = sl.basin_labels(field, x, torch.stack((a, b)))
    labels = sl.basin_labels(field, x, torch.stack((a, b)), relative_tol=0.5)
    # trajectories stop along the memories' slow manifolds, rarely within tol of a or b
    assert (strict >= 0).float().mean() < 0.2 and (labels >= 0).float().mean() > 0.95
    # and the basin is the memory that the network reads out
    with torch.no_grad():
        readout = model.linear(sl.integrate(field, x, [0.0, 60.0])[-1]).squeeze(-1)
        at_b = model.linear(b).item()
    known = labels >= 0
    assert torch.equal(labels[known] == 1, (readout[known] * at_b > 0))


def test_an_unknown_book_network_is_named():
    with pytest.raises(ValueError, match="flipflop_gru_64d"):
        sl.load_flipflop_gru(name="flipflop_gru_3d")


def test_training_script_is_deterministic(tmp_path):
    from seplib.flipflop import train_flipflop
    a = train_flipflop(2, seed=5, steps=30, progress=False)
    b = train_flipflop(2, seed=5, steps=30, progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    # another task (trial length, pulse probability) trains another network from the same seed
    c = train_flipflop(2, seed=5, steps=30, progress=False, task={"pulse_prob": 0.3, "n_steps": 40})
    assert not torch.equal(c.rnn.weight_hh_l0, a.rnn.weight_hh_l0)


def test_installed_package_ships_the_book_checkpoint(tmp_path):
    """What `pip install "git+<repository URL>"` installs (in Colab) holds the GRU and its card."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(root)],
                   check=True, timeout=600)
    (wheel,) = tmp_path.glob("seplib-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "seplib/rnn_params/flipflop_gru_2d/model.pt" in names
    assert "seplib/rnn_params/flipflop_gru_2d/card.json" in names
    assert "seplib/rnn_params/flipflop_gru_64d/model.pt" in names


def test_book_card_reads_each_networks_card():
    assert sl.book_card() == CARD
    card = sl.book_card("flipflop_gru_64d")
    assert card["n_hidden"] == 64 and len(card["saddle"]) == 64
    with pytest.raises(ValueError, match="flipflop_gru_2d"):
        sl.book_card("nope")
