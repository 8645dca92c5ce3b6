import warnings

import matplotlib.pyplot as plt
import pytest
import torch

import seplib as sl
from seplib import plots
from seplib.widgets import frames_slider, kef_panel, scales_up_to


class XMinusShift(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.w * x[..., 0]


def test_every_plot_draws_with_current_matplotlib():
    system = sl.bistable_2d()
    psi = XMinusShift()
    psi.loss_history_ = [1.0, 0.5, 0.1]
    a = torch.tensor(system.attractors)
    fig, axes = plt.subplots(2, 3)
    plots.phase_portrait(system, ax=axes[0, 0], attractors=a, separatrix_point=[0.0, 0.0])
    plots.samples(sl.MultiscaleGaussian(2).sample(10), ax=axes[0, 1])
    traj = sl.integrate(system, torch.tensor([[0.5, 0.5], [-0.5, 1.0]]), torch.linspace(0, 1, 11))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plots.trajectories(traj, ax=axes[0, 2]).get_legend() is None   # nothing labelled
        assert plots.trajectories(traj, attractors=a).get_legend() is not None   # a new figure
        # its colorbar goes to ax's figure, which is no longer the current one
        ax = plots.kef_levels(psi, system, ax=axes[1, 0], attractors=a, true_separatrix=system.separatrix)
    assert len(ax.collections) > 0 and ax.get_legend() is not None
    plots.kef_levels(psi, ax=axes[1, 1], true_separatrix=torch.zeros(5, 2), colorbar=False)
    plots.loss_curve(psi, labels=["x"], ax=axes[1, 2])
    plots.kef_1d(lambda x: x[..., 0], analytic=sl.analytic_kef_1d)
    plt.close("all")


def test_basin_mismatch_counts_the_points_in_the_wrong_basin():
    system = sl.bistable_2d()
    _, _, points = sl.grid((-2, -2), (2, 2), 40)    # columns at x = -2 + 4k/39: none on x = 0
    labels = sl.basin_labels(system, points, torch.tensor(system.attractors))
    shifted = lambda x: -(x[..., 0] - 0.45)         # zero set at x = 0.45, other sign convention
    ax = plots.basin_mismatch(shifted, points, labels)
    # the 4 grid columns with 0 < x < 0.45 (x = 0.05, 0.15, 0.26, 0.36) are in the wrong basin
    assert ax.get_legend().get_texts()[1].get_text() == f"wrong basin ({4 / 40:.1%})"
    plt.close("all")


def test_panel_shows_its_default_figure_and_has_the_controls(capsys):
    psi = XMinusShift()
    panel = kef_panel(sl.bistable_2d(), [-1.0, 0.0], [1.0, 0.0], kef=psi)
    names = [getattr(w, "description", "") for w in panel.children]
    assert {"eigenvalue λ", "largest scale", "max epochs", "objective", "Train"} <= set(names)
    assert "Figure" in capsys.readouterr().out  # displayed as a plain figure, no frontend needed


def test_frames_slider_embeds_one_image_per_frame():
    figs = [plt.figure() for _ in range(3)]
    html = frames_slider(figs, [1, 2, 3], name="epochs").data
    assert html.count("<img") == 3 and 'type="range"' in html and 'max="2"' in html
    assert 'value="0"' in html and html.count("display:block") == 1 and "<output>1</output>" in html
    last = frames_slider([plt.figure() for _ in range(3)], [1, 2, 3], start=-1).data
    assert 'value="2"' in last and "<output>3</output>" in last
    for start in (3, -4, 1.0, True):
        with pytest.raises(ValueError, match="start must be the index of one of the 3 frames"):
            frames_slider([plt.figure() for _ in range(3)], [1, 2, 3], start=start)


def test_scale_ladder_keeps_the_reference_ratios():
    assert scales_up_to(8.0) == (0.02, 0.2, 1.0, 2.0, 4.0, 8.0)


def test_kef_slice_draws_psi_and_the_truth_on_a_plane_through_d_dimensions():
    system = sl.bistable_nd(6, seed=0)
    a, b = (torch.tensor(p) for p in system.attractors)
    sideways = torch.randn(6, generator=torch.Generator().manual_seed(0))
    psi = lambda x: system.separatrix_value(x) - 0.1   # noqa: E731 (zero set 0.1 off the truth)
    to_space, to_plane, (u, v) = plots.plane(torch.zeros(6), b - a, sideways)
    assert abs(u @ v) < 1e-6 and abs(u.norm() - 1) < 1e-6 and abs(v.norm() - 1) < 1e-6
    st = torch.tensor([[0.3, -0.7]])
    torch.testing.assert_close(to_plane(to_space(st)), st)
    fig, axes = plt.subplots(1, 2)
    for ax, truth in zip(axes, (system.separatrix_value, "integrate")):
        plots.kef_slice(psi, system, torch.zeros(6), b - a, sideways, ax=ax, truth=truth, n=31,
                        n_truth=15, attractors=torch.stack((a, b)), saddle=torch.zeros(6))
        assert len(ax.get_legend().legend_handles) >= 3   # psi = 0, the truth, the points
        assert "saddle" in [t.get_text() for t in ax.get_legend().get_texts()]
    # the attractors project onto the u axis at -+|b - a| / 2
    torch.testing.assert_close(to_plane(b), torch.tensor([(b - a).norm() / 2, 0.0]), atol=1e-5, rtol=0)
    plt.close("all")


def test_kef_slice_names_a_bad_plane_or_a_nan_psi():
    system = sl.bistable_nd(6, seed=0)
    e = torch.eye(6)
    with pytest.raises(ValueError, match="origin has NaN or inf"):
        plots.kef_slice(system.separatrix_value, system, torch.full((6,), float("nan")), e[0], e[1])
    with pytest.raises(ValueError, match="u must be a 1-D tensor of length 6"):
        plots.kef_slice(system.separatrix_value, system, torch.zeros(6), e[0, :3], e[1])
    with pytest.raises(FloatingPointError, match="psi is NaN at 961 of 961 points"):
        plots.kef_slice(lambda x: x[..., 0] * float("nan"), system, torch.zeros(6), e[0], e[1], n=31)
    plt.close("all")


def test_the_plots_and_the_slider_name_what_they_cannot_draw():
    field = sl.bistable_2d()
    with pytest.raises(FloatingPointError, match="the field is NaN"):
        plots.phase_portrait(lambda x: x * float("nan"))
    with pytest.raises(ValueError, match="one number per point"):
        plots.kef_levels(lambda x: x, field)
    with pytest.raises(FloatingPointError, match="psi is NaN"):
        plots.kef_1d(lambda x: x * float("nan"))
    with pytest.raises(ValueError, match="this KEF is of a 2-D one: use seplib.plots.kef_levels"):
        plots.kef_1d(sl.KEF(sl.kef.mlp(2), 2))
    with pytest.raises(ValueError, match=r"\[N, 2\] or \[n_scales, n, 2\]"):
        plots.samples(torch.zeros(5))
    with pytest.raises(ValueError, match="at least one KEF"):
        plots.loss_curve()
    with pytest.raises(ValueError, match="largest must be a finite scale > 0"):
        scales_up_to(-1.0)
    with pytest.raises(ValueError, match="one label per figure"):
        frames_slider([plt.figure()], [1, 2])
    with pytest.raises(ValueError, match="figures must be matplotlib figures"):
        frames_slider("ab", [1, 2])
    with pytest.raises(ValueError, match="largest_scale must be a finite scale > 0"):
        kef_panel(field, [-1.0, 0.0], [1.0, 0.0], kef=sl.KEF(sl.kef.mlp(2), 2), largest_scale=float("nan"))
    plt.close("all")


def test_streamlines_draw_on_a_box_away_from_the_origin():
    # float32 grid coordinates far from 0 are not evenly spaced to streamplot's tolerance
    # ('y' values must be equally spaced): the field's grid is laid out in float64
    field = sl.bistable_2d()
    plots.phase_portrait(field, lo=(1.0, 2.0), hi=(2.5, 2.5))
    plots.kef_levels(lambda x: x[..., 0] - 1.5, field, lo=(1.0, 2.0), hi=(2.5, 2.5))
    plt.close("all")
