"""Many memories: exact many-basin systems, finding memories and edges, the basin map, flips to a
chosen memory, and the k-bit flip-flop networks."""
import pytest
import torch

import seplib as sl
from seplib.basins import broad_cloud, edge_clouds
from seplib.rnn import flipflop_error, flipflop_trials

QUICK = sl.Recipe(training=sl.Training(epochs=600, batch_size=96), refinement=None)


def _tensor(points):
    return torch.tensor(points, dtype=torch.float32)


@pytest.mark.parametrize("system", [sl.multistable_nd(5, bits=3, seed=1), sl.wells_nd(4, wells=5, seed=2)])
def test_exact_basins_agree_with_simulation(system):
    x = 1.2 * torch.randn(400, system.dim, generator=torch.Generator().manual_seed(0))
    A = _tensor(system.attractors)
    labels = sl.basin_labels(system, x, A, margin=0)
    placed = labels >= 0
    assert placed.float().mean() > 0.98
    assert (labels[placed] == system.basin(x)[placed]).all()
    assert system.basin(A).tolist() == list(range(len(A)))
    assert torch.allclose(system(A), torch.zeros_like(A), atol=1e-5)
    assert torch.allclose(system(_tensor(system.saddle)), torch.zeros(len(system.saddle), system.dim), atol=1e-5)


def test_many_basin_systems_refuse_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        sl.multistable_nd(4, bits=0)
    with pytest.raises(ValueError, match="dim"):
        sl.multistable_nd(2, bits=3)
    with pytest.raises(ValueError, match="wells"):
        sl.wells_nd(3, wells=1)


def test_find_memories_finds_every_attractor_and_no_other():
    system = sl.multistable_nd(6, bits=3, seed=0)
    found = sl.find_memories(system, 6)
    truth = _tensor(system.attractors)
    assert len(found) == 8
    assert torch.cdist(found, truth).min(dim=1).values.max() < 1e-2


@pytest.mark.parametrize("system, pairs", [
    (sl.multistable_nd(3, bits=2, seed=0), [(0, 1), (0, 2), (1, 3), (2, 3)]),
    (sl.wells_nd(3, wells=5, seed=0), [(0, 1), (0, 4), (1, 2), (2, 3), (3, 4)]),
])
def test_find_edges_joins_neighbours_only_through_their_saddles(system, pairs):
    A = _tensor(system.attractors)
    edges = sl.find_edges(system, A)
    assert edges.pairs == pairs
    assert torch.cdist(edges.saddles, _tensor(system.saddle)).min(dim=1).values.max() < 1e-3
    for (i, j), s, v in zip(edges.pairs, edges.saddles, edges.directions):   # v points towards memory j
        assert system.basin(s + 0.05 * v).item() == j and system.basin(s - 0.05 * v).item() == i


@pytest.fixture(scope="module")
def wells_map():
    system = sl.wells_nd(3, wells=3, seed=0)
    return system, sl.basin_map(system, 3, attractors=_tensor(system.attractors), progress=False, recipe=QUICK)


def test_basin_map_of_three_wells_meeting_at_an_angle(wells_map):
    system, bm = wells_map
    assert len(bm.kefs) == 3 and bm.edges.pairs == [(0, 1), (0, 2), (1, 2)]   # no KEF splits two edges
    assert bm(bm.attractors).tolist() == [0, 1, 2]
    x = broad_cloud(bm.attractors, 1000)
    report = sl.validate_basin_map(bm, system, x, labels=system.basin(x))
    assert report.agreement > 0.95
    assert report.confusion.sum() == 1000 and report.unplaced == 0
    assert bm(x).shape == (1000,) and bm(x[0]).shape == ()
    xe, which = edge_clouds(bm, n=100)
    assert len(xe) == 300 and which.max() == 2


def test_basin_map_shares_one_kef_across_the_edges_of_a_sheet():
    system = sl.multistable_nd(3, bits=2, seed=0)
    bm = sl.basin_map(system, 3, attractors=_tensor(system.attractors), progress=False, recipe=QUICK)
    assert len(bm.edges.pairs) == 4 and len(bm.kefs) == 2   # one KEF per bit
    x = broad_cloud(bm.attractors, 1000)
    assert sl.validate_basin_map(bm, system, x, labels=system.basin(x)).agreement > 0.95
    unshared = sl.basin_map(system, 3, attractors=_tensor(system.attractors), progress=False, recipe=QUICK,
                            share=False)
    assert len(unshared.kefs) == 4


def test_basin_map_names_bad_input():
    system = sl.multistable_nd(3, bits=2, seed=0)
    A = _tensor(system.attractors)
    with pytest.raises(ValueError, match="two or more"):
        sl.basin_map(system, 3, attractors=A[:1])
    with pytest.raises(ValueError, match="same point"):
        sl.basin_map(system, 3, attractors=torch.stack((A[0], A[0])))
    with pytest.raises(ValueError, match=r"\[k, 3\]"):
        sl.basin_map(system, 3, attractors=A[:, :2])
    with pytest.raises(RuntimeError, match="no saddle"):   # diagonal memories: a third basin lies between
        sl.basin_map(system, 3, attractors=A[[0, 3]])
    with pytest.raises(ValueError, match="recipe"):
        sl.basin_map(system, 3, attractors=A, recipe="fast")


def test_smallest_flip_to_a_chosen_memory(wells_map):
    system, bm = wells_map
    A = bm.attractors
    for target in (1, 2):
        delta = sl.smallest_flip(bm, A[0], target=target)
        assert system.basin(A[0] + 1.05 * delta).item() == target
        assert system.basin(A[0] + 0.8 * delta).item() == 0
        refined, used = sl.refine_flip(system, A[0], delta, A, target=target)
        assert sl.flip_verdict(system, A[0], refined, A, target=target) == "flips"
        brute, _ = sl.brute_force_flip(system, A[0], A, n_directions=32, target=target)
        assert system.basin(A[0] + 1.02 * brute).item() == target
        assert refined.norm() <= brute.norm() * 1.05
    with pytest.raises(ValueError, match="target="):
        sl.smallest_flip(bm, A[0])
    with pytest.raises(ValueError, match="already"):
        sl.smallest_flip(bm, A[0], target=0)
    with pytest.raises(ValueError, match="integer from 0 to 2"):
        sl.smallest_flip(bm, A[0], target=3)
    with pytest.raises(ValueError, match="already"):
        sl.flip_verdict(system, A[0], A[1] - A[0], A, target=0)
    with pytest.raises(ValueError, match="integer from 0 to 2"):
        sl.brute_force_flip(system, A[0], A, target=-1)


def test_smallest_flip_target_with_a_two_attractor_kef():
    system = sl.bistable_2d()
    a, b = _tensor(system.attractors)
    kef = sl.fit_kef(system, a, b, recipe=sl.Recipe.low_dim(), epochs=800, progress=False)
    assert torch.equal(kef.attractors_, torch.stack((a, b)))
    delta = sl.smallest_flip(kef, a, target=1)
    assert torch.allclose(delta, sl.smallest_flip(kef, a), atol=1e-5)
    assert sl.flips(system, a, 1.05 * delta, torch.stack((a, b)), target=1) or \
        sl.flip_verdict(system, a, delta, torch.stack((a, b)), target=1) in ("flips", "short", "past")
    with pytest.raises(ValueError, match="already"):
        sl.smallest_flip(kef, a, target=0)


def test_flip_verdict_says_elsewhere_when_a_push_lands_in_a_third_basin():
    system = sl.wells_nd(3, wells=3, seed=0)
    A = _tensor(system.attractors)
    assert sl.flip_verdict(system, A[0], A[1] - A[0], A, target=2) == "elsewhere"
    assert sl.flip_verdict(system, A[0], A[2] - A[0], A, target=2) == "past"


def test_k_bit_trials_hold_each_bit():
    u, target = flipflop_trials(5, n_steps=30, pulse_prob=0.1, generator=torch.Generator().manual_seed(0), bits=3)
    assert u.shape == target.shape == (30, 5, 3)
    assert (u[0] != 0).all() and set(target.unique().tolist()) == {-1.0, 1.0}
    for t in range(1, 30):
        held = torch.where(u[t] != 0, u[t], target[t - 1])
        assert torch.equal(target[t], held)
    one, _ = flipflop_trials(4, generator=torch.Generator().manual_seed(1))
    assert one.shape == (100, 4, 1)


@pytest.mark.parametrize("name, bits", [("flipflop3_gru_32d", 3), ("flipflop2_gru_16d", 2),
                                        ("flipflop3_gru_64d", 3), ("flipflop3_rnn_32d", 3)])
def test_k_bit_book_networks_and_their_cards(name, bits):
    card = sl.book_card(name)
    model = sl.load_flipflop_gru(name=name)
    assert model.rnn.input_size == bits and card["n_in"] == bits
    assert flipflop_error(model, n_steps=card["task"]["n_steps"], pulse_prob=card["task"]["pulse_prob"]) \
        < card["error_threshold"]
    memories = _tensor(card["attractors"])
    assert len(memories) == 2**bits
    field = sl.gru_vector_field(model, **{k: card["field"][k] for k in ("speed", "dt")})
    assert field(memories).norm(dim=-1).max() < 1e-2
    with torch.no_grad():   # each memory reads out its own pattern of bits
        patterns = {tuple(p) for p in torch.sign(model.linear(memories)).int().tolist()}
    assert len(patterns) == 2**bits
    assert len(card["edges"]) == len(card["saddles"]) >= bits * 2 ** (bits - 1)


def test_refinement_labels_states_by_the_side_of_the_sheet_their_memory_lies_on():
    # basin_map's refinement near the other edges of a sheet: each state is simulated to any of
    # the memories and labelled by that memory's side, here of multistable_nd's bit-0 sheet
    from seplib.kef import Sheet, zero_set_labels
    system = sl.multistable_nd(3, bits=2, seed=0)
    A = _tensor(system.attractors)
    net = torch.nn.Linear(3, 1)
    with torch.no_grad():   # psi = z_0, positive on bit 0's side (memories 1 and 3)
        net.weight.copy_((A[1] - A[0])[None] / 2)
        net.bias.zero_()
    sides = torch.tensor([-1.0, 1.0, -1.0, 1.0])
    probes = 1.5 * torch.randn(2, 300, 3, generator=torch.Generator().manual_seed(0)).reshape(-1, 3)
    x, y = zero_set_labels(net, system, probes, 2, A[[0, 1]], n=200, sheet=Sheet(A, sides, probes[:0], 0))
    assert len(x) >= 190
    truth = torch.where(system.separatrix_value(x) > 0, 1.0, -1.0)
    assert (y == truth).float().mean() > 0.97   # the few states on the sheet itself may go either way
    sides[2] = 0.0   # memory 2's side unknown: its states are dropped
    x2, _ = zero_set_labels(net, system, probes, 2, A[[0, 1]], n=200, sheet=Sheet(A, sides, probes[:0], 0))
    assert len(x2) < len(x) and (system.basin(x2) != 2).all()
