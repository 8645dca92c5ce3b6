"""The figures the chapters show. Each takes an optional ``ax`` and returns it."""
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.lines import Line2D

from ._guards import as_field, as_point, as_states, finite_or_raise, psi_of
from .flow import basin_labels
from .validate import grid, wrong_basin

# psi's zero set: gold dashes drawn over a wider black truth line, which shows either side of them
# and in their gaps where the two agree
ZERO_STYLE = dict(colors="gold", linewidths=1.8, linestyles="--", zorder=4)
TRUTH_STYLE = dict(colors="k", linewidths=3.2, zorder=3)
# the legend's lines, drawn as the contours are
ZERO_HANDLE = dict(color=ZERO_STYLE["colors"], lw=ZERO_STYLE["linewidths"], ls=ZERO_STYLE["linestyles"],
                   label=r"$\psi = 0$")
TRUTH_HANDLE = dict(color=TRUTH_STYLE["colors"], lw=TRUTH_STYLE["linewidths"])


def _ax(ax, figsize=(5.5, 4.5)):
    return plt.subplots(figsize=figsize)[1] if ax is None else ax


def _field_on_grid(field, lo, hi, n):
    if getattr(field, "dim", 2) != 2:
        raise ValueError(f"a phase portrait draws a 2-D field, and this one is {field.dim}-dimensional: "
                         "draw psi on a plane through its state space with kef_slice instead")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (grid points per side), got {n!r}")
    X, Y, pts = grid(lo, hi, n, dtype=torch.float64)   # streamplot wants spacing equal to float64's eye
    pts = pts.float()
    with torch.no_grad():
        try:
            F = as_field(field, 2)(pts)
        except RuntimeError as err:   # a field of another dimension, usually
            raise ValueError(f"the field failed on the plot's 2-D points ({err}): a phase portrait draws a "
                             "2-D field; in more dimensions draw psi on a plane with kef_slice") from err
    finite_or_raise(F, "the field", "there are no streamlines to draw", "check f on the plotted box (lo, hi)",
                    points=pts)
    return X.numpy(), Y.numpy(), F[:, 0].reshape(X.shape).numpy(), F[:, 1].reshape(X.shape).numpy()


def _points(ax, attractors=None, separatrix_point=None, point_label="separatrix point"):
    if attractors is not None:
        a = torch.as_tensor(attractors).cpu()
        ax.scatter(a[:, 0], a[:, 1], c="tab:green", s=60, edgecolor="k", zorder=5, label="attractors")
    if separatrix_point is not None:
        p = torch.as_tensor(separatrix_point).cpu().reshape(-1, 2)
        ax.scatter(p[:, 0], p[:, 1], c="tab:red", s=70, edgecolor="k", zorder=5, label=point_label)


def _legend(ax, handles=None):
    """The legend of ``handles`` and what has a label, if anything (matplotlib warns and draws
    none else), below the axes: never over the data."""
    handles = (handles or []) + ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, len(handles)),
                  fontsize=9, frameon=False)


def _nice(value):
    """The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten) that
    is at least ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if m * power >= value * (1 - 1e-9))


def _finish(ax, title, xlabel, ylabel):
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def phase_portrait(field, lo=(-2.5, -2.5), hi=(2.5, 2.5), ax=None, attractors=None,
                   separatrix_point=None, n=41, title="Vector field", labels=("$x$", "$y$")):
    """Streamlines of a 2-D field, with its attractors and a separatrix point."""
    ax = _ax(ax)
    X, Y, U, V = _field_on_grid(field, lo, hi, n)
    ax.streamplot(X, Y, U, V, color="tab:blue", linewidth=1.0, density=1.2)
    _points(ax, attractors, separatrix_point)
    _finish(ax, title, *labels)
    _legend(ax)
    return ax


def samples(points, ax=None, title="Training samples", labels=("$x$", "$y$")):
    """A scatter of samples ``[N, 2]`` (or ``[n_scales, n, 2]``, one colour per scale)."""
    ax = _ax(ax)
    pts = as_states(points, "points").cpu()
    if pts.dim() not in (2, 3) or pts.shape[-1] != 2:
        raise ValueError(f"points must be [N, 2] or [n_scales, n, 2] (2-D samples), got shape {tuple(pts.shape)}")
    pts = pts[None] if pts.dim() == 2 else pts
    for i, p in enumerate(pts):
        ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.35, label=f"scale {i}" if len(pts) > 1 else None)
    _finish(ax, title, *labels)
    return ax


def trajectories(traj, ax=None, attractors=None, separatrix_point=None, title="Sample trajectories",
                 labels=("$x$", "$y$")):
    """Trajectories ``[time, n, 2]`` (as from ``integrate``), each with a dot at its start."""
    ax = _ax(ax)
    traj = as_states(traj, "traj").cpu()
    if traj.dim() != 3 or traj.shape[-1] != 2:
        raise ValueError(f"traj must be [time, n, 2] (2-D trajectories, as from integrate), got shape "
                         f"{tuple(traj.shape)}")
    colors = plt.cm.tab10(np.arange(traj.shape[1]) % 10)
    for i in range(traj.shape[1]):
        ax.plot(traj[:, i, 0], traj[:, i, 1], color=colors[i], lw=1.5)
        ax.scatter(traj[0, i, 0], traj[0, i, 1], color=colors[i], s=20)
    _points(ax, attractors, separatrix_point)
    _finish(ax, title, *labels)
    _legend(ax)
    return ax


def kef_levels(kef, field=None, lo=(-2.5, -2.5), hi=(2.5, 2.5), ax=None, attractors=None,
               separatrix_point=None, true_separatrix=None, n=161, title="KEF level sets",
               labels=("$x$", "$y$"), colorbar=True, point_label="separatrix point"):
    """Filled level sets of psi with its zero contour (gold, dashed) over the field's streamlines.
    ``separatrix_point`` is drawn in red, named ``point_label`` in the legend.

    ``true_separatrix`` is either a function whose zero set is the separatrix (drawn as a black
    line) or points ``[N, 2]`` on it (drawn as black dots), e.g. crossings found by bisection.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (grid points per side), got {n!r}")
    ax = _ax(ax)
    X, Y, pts = grid(lo, hi, n)
    with torch.no_grad():
        Z = psi_of(kef, pts)
    finite_or_raise(Z.reshape(-1), "psi", "it has no level sets there to draw", "check the KEF (a diverged "
                    "fit?), or the plane", points=pts)
    Z = Z.reshape(X.shape).cpu().numpy()
    X, Y = X.numpy(), Y.numpy()
    # a symmetric scale rounded up to a round number, with ticks at -lim, -lim/2, 0, lim/2, lim: the
    # colour bar reads alike in every frame of a slider
    lim = _nice(np.abs(Z).max() or 1.0)
    filled = ax.contourf(X, Y, Z, levels=np.linspace(-lim, lim, 33), cmap="coolwarm", vmin=-lim, vmax=lim,
                         extend="neither")
    if colorbar:
        ax.figure.colorbar(filled, ax=ax, label=r"$\psi$", ticks=np.linspace(-lim, lim, 5))
    handles = [Line2D([], [], **ZERO_HANDLE)]
    if Z.min() < 0 < Z.max():
        ax.contour(X, Y, Z, levels=[0.0], **ZERO_STYLE)
    if field is not None:
        Xs, Ys, U, V = _field_on_grid(field, lo, hi, 41)
        ax.streamplot(Xs, Ys, U, V, color="k", density=1.0, linewidth=0.6, arrowsize=0.8)
    if callable(true_separatrix):
        with torch.no_grad():
            S = true_separatrix(torch.as_tensor(pts)).reshape(X.shape).numpy()
        ax.contour(X, Y, S, levels=[0.0], **TRUTH_STYLE)
        handles.append(Line2D([], [], **TRUTH_HANDLE, label="true separatrix"))
    elif true_separatrix is not None:
        t = torch.as_tensor(true_separatrix).cpu()
        ax.scatter(t[:, 0], t[:, 1], c="k", s=6, zorder=4)
        handles.append(Line2D([], [], color="k", marker="o", ls="", ms=3, label="true separatrix"))
    _points(ax, attractors, separatrix_point, point_label)
    _finish(ax, title, *labels)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    _legend(ax, handles)
    return ax


def plane(origin, u, v):
    """The map (s, t) -> origin + s u + t v, with u and v made orthonormal (Gram-Schmidt), and
    its inverse on points: ``(to_space, to_plane)``."""
    origin = as_point(origin, "origin", dtype=torch.float32)
    u, v = (as_point(w, name, len(origin), torch.float32) for w, name in ((u, "u"), (v, "v")))
    u = u / u.norm()
    v = v - (v @ u) * u
    if not (u.norm() > 0 and v.norm() > 1e-6 * u.norm()):
        raise ValueError("u and v must be nonzero and not parallel: they span the plane")
    v = v / v.norm()

    def to_space(st):
        st = torch.as_tensor(st, dtype=origin.dtype)
        return origin + st[..., :1] * u + st[..., 1:2] * v

    def to_plane(x):
        d = torch.as_tensor(x, dtype=origin.dtype) - origin
        return torch.stack((d @ u, d @ v), dim=-1)

    return to_space, to_plane, (u, v)


def kef_slice(kef, field, origin, u, v, lo=(-1.5, -1.5), hi=(1.5, 1.5), ax=None, truth=None,
              attractors=None, saddle=None, n=121, n_truth=41, title="KEF on a plane",
              labels=("$s$", "$t$"), relative_tol=None):
    """psi's level sets on the plane origin + s u + t v through a d-dimensional state space, with
    the flow projected onto the plane (its u and v components) and the true separatrix there.

    ``truth`` is a function on ``[..., d]`` whose zero set is the separatrix (for instance
    ``System.separatrix_value``: drawn as a line), ``"integrate"`` (basins by integration on an
    ``n_truth`` x ``n_truth`` grid of the plane, boundary drawn as a line: n_truth^2 trajectories),
    or None. ``attractors`` and ``saddle`` (points in d dimensions) are drawn where they project.
    A plane through both attractors and the saddle shows all three. ``relative_tol`` goes to
    ``basin_labels`` with ``truth="integrate"`` (memories on slow manifolds).
    """
    to_space, to_plane, (eu, ev) = plane(origin, u, v)

    def psi(st):   # a KEF computes on its network's device and returns on the input's
        return psi_of(kef, to_space(st)).cpu()

    def flow(st):
        F = as_field(field)(to_space(st))
        return torch.stack((F @ eu.to(F), F @ ev.to(F)), dim=-1)

    exact = (lambda st: truth(to_space(st))) if callable(truth) else None
    ax = kef_levels(psi, flow, lo, hi, ax=ax, true_separatrix=exact, n=n, title=title, labels=labels,
                    attractors=None if attractors is None else to_plane(attractors),
                    separatrix_point=None if saddle is None else to_plane(saddle).reshape(1, 2),
                    point_label="saddle")
    if isinstance(truth, str):
        if truth != "integrate":
            raise ValueError(f"truth must be a function, 'integrate' or None, got {truth!r}")
        if attractors is None:
            raise ValueError("truth='integrate' needs the attractors, to label the basins")
        X, Y, pts = grid(lo, hi, n_truth)
        # margin=0: one trajectory per grid point, as documented; the contour between labels
        # needs no check of the points within 1e-3 of the separatrix (it tripled the cost)
        found = basin_labels(field, to_space(pts), torch.as_tensor(attractors, dtype=torch.float32),
                             margin=0, relative_tol=relative_tol)
        L = found.reshape(X.shape).float().numpy()
        L[L < 0] = np.nan   # on the separatrix or not settled: left out of the contour
        ax.contour(X.numpy(), Y.numpy(), L, levels=[0.5], **TRUTH_STYLE)
        _legend(ax, [Line2D([], [], **ZERO_HANDLE),
                     Line2D([], [], **TRUTH_HANDLE, label=f"true separatrix ({n_truth} x {n_truth} simulated)")])
    return ax


def basin_mismatch(kef, points, labels, ax=None, attractors=None, title="Where sign(psi) is wrong",
                   labels_xy=("$x$", "$y$")):
    """The true basins (pale blue and green, from ``basin_labels`` on a square grid ``points``
    as made by ``grid``), psi's zero contour, and in red the grid points where the sign of psi
    puts the state in the wrong basin (with the better of the two sign conventions)."""
    ax = _ax(ax)
    n = math.isqrt(len(points))
    if n * n != len(points) or labels.shape != points.shape[:1]:
        raise ValueError("basin_mismatch needs the n*n points of sl.grid and one label per point")
    with torch.no_grad():
        psi = psi_of(kef, points).cpu()
    labels = labels.cpu()
    known = labels >= 0
    wrong = wrong_basin(psi, labels)
    X, Y = (points[:, i].reshape(n, n).cpu().numpy() for i in (0, 1))
    ax.contourf(X, Y, labels.reshape(n, n).float().numpy(), levels=[-1.5, -0.5, 0.5, 1.5],
                colors=["white", "#cfe3f3", "#d7efcf"])
    ax.contour(X, Y, psi.reshape(n, n).numpy(), levels=[0.0], **ZERO_STYLE)
    ax.scatter(points[wrong, 0].cpu(), points[wrong, 1].cpu(), s=2, c="crimson", lw=0)
    handles = [Line2D([], [], **ZERO_HANDLE),
               Line2D([], [], color="crimson", marker="o", ls="", ms=3,
                      label=f"wrong basin ({wrong[known].float().mean().item():.1%})")]
    _points(ax, attractors)
    _finish(ax, title, *labels_xy)
    _legend(ax, handles)
    return ax


def kef_1d(kef, analytic=None, lo=-0.95, hi=0.95, ax=None, title="1D KEF"):
    """psi against x for a 1-D system, with the analytic KEF rescaled to psi by least squares, on
    each side of 0 apart: no trajectory crosses the separatrix, so each side's scale is free."""
    if getattr(kef, "dim", 1) != 1:
        raise ValueError(f"kef_1d draws psi of a 1-D system, and this KEF is of a {kef.dim}-D one: use "
                         "seplib.plots.kef_levels (2-D) or kef_slice (any d)")
    ax = _ax(ax, (5.5, 3.5))
    x = torch.linspace(lo, hi, 401).unsqueeze(-1)
    with torch.no_grad():
        psi = psi_of(kef, x)
    finite_or_raise(psi, "psi", "there is no curve to draw", "check the KEF (a diverged fit?)", points=x)
    ax.plot(x[:, 0], psi, lw=2.5, label=r"learned $\psi$")
    if analytic is not None:
        ref, fitted, scales = analytic(x[:, 0]), torch.zeros_like(psi), []
        for side in (x[:, 0] < 0, x[:, 0] > 0):
            scales.append((psi[side] * ref[side]).sum() / (ref[side] ** 2).sum())
            fitted[side] = scales[-1] * ref[side]
        ax.plot(x[:, 0], fitted, "k--", lw=1.5,
                label=f"analytic (x {scales[0]:.3g} left, x {scales[1]:.3g} right)")
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("$x$")
    ax.set_ylabel(r"$\psi(x)$")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def loss_curve(*kefs, labels=None, ax=None, title="Training loss"):
    """The loss history of one or more KEFs (log scale)."""
    if not kefs:
        raise ValueError("loss_curve needs at least one KEF, e.g. loss_curve(kef)")
    if labels is not None and len(labels) != len(kefs):
        raise ValueError(f"labels has {len(labels)} entries for {len(kefs)} KEFs: give one label per KEF")
    for k in kefs:
        if not hasattr(k, "loss_history_"):
            raise ValueError(f"loss_curve draws fitted KEFs (from sl.fit_kef, with loss_history_), got "
                             f"{type(k).__name__}")
    ax = _ax(ax, (5.5, 3.5))
    for i, k in enumerate(kefs):
        ax.plot(k.loss_history_, lw=1, label=labels[i] if labels else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if labels:
        ax.legend(fontsize=8)
    return ax


def basin_slice(bm, origin, u, v, lo=(-1.5, -1.5), hi=(1.5, 1.5), ax=None, field=None, truth=None, n=161,
                n_truth=41, title="Basin map on a plane", labels=("$s$", "$t$"), relative_tol=0.5):
    """A ``BasinMap`` on the plane origin + s u + t v: each point coloured by the memory the map
    gives it (one colour per memory), the map's boundaries in gold dashes (the memories that lie in the plane drawn and numbered),
    and the true boundaries in black: from ``truth`` (a function
    ``[..., d] -> basin index``, such as ``System.basin``) or, with ``field``, by simulation on an
    ``n_truth`` x ``n_truth`` grid (``relative_tol`` as in ``sl.basin_labels``)."""
    to_space, to_plane, _ = plane(origin, u, v)
    ax = _ax(ax, (5.5, 5.2))
    k = len(bm.attractors)
    colours = plt.get_cmap("tab10" if k <= 10 else "tab20")
    X, Y, pts = grid(lo, hi, n)
    with torch.no_grad():
        L = bm(to_space(pts)).reshape(X.shape).numpy()
    ax.imshow(L, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap=colours, vmin=-0.5,
              vmax=colours.N - 0.5, alpha=0.45, interpolation="nearest", zorder=1)
    ax.contour(X.numpy(), Y.numpy(), L.astype(float), levels=np.arange(k - 1) + 0.5, **ZERO_STYLE)
    handles = [Line2D([], [], **(ZERO_HANDLE | {"label": "the map's boundaries"}))]
    if truth is not None or field is not None:
        Xt, Yt, pt = grid(lo, hi, n_truth)
        if truth is not None:
            T = truth(to_space(pt))
            what = "true boundaries (exact)"
        else:
            T = basin_labels(field, to_space(pt), bm.attractors, margin=0, relative_tol=relative_tol)
            what = f"true boundaries ({n_truth} x {n_truth} simulated)"
        T = T.reshape(Xt.shape).float().numpy()
        T[T < 0] = np.nan
        ax.contour(Xt.numpy(), Yt.numpy(), T, levels=np.arange(k - 1) + 0.5, **TRUTH_STYLE)
        handles.append(Line2D([], [], **TRUTH_HANDLE, label=what))
    P = to_plane(bm.attractors)
    off = (bm.attractors - to_space(P)).norm(dim=-1).numpy()   # memories off the plane are not drawn
    P = P.numpy()
    inside = (P[:, 0] >= lo[0]) & (P[:, 0] <= hi[0]) & (P[:, 1] >= lo[1]) & (P[:, 1] <= hi[1])
    inside &= off <= 0.05 * max(hi[0] - lo[0], hi[1] - lo[1])
    for i in np.flatnonzero(inside):
        ax.scatter(*P[i], color=colours(i), s=70, edgecolor="k", zorder=5)
        ax.annotate(str(i), P[i], xytext=(5, 5), textcoords="offset points", fontsize=10, zorder=6)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    _finish(ax, title, *labels)
    _legend(ax, handles)
    return ax


def confusion(report, ax=None, title="Basin map against simulation"):
    """The confusion matrix of ``validate_basin_map``'s report: rows simulation's memory, columns
    the map's, each row as fractions of its states (the count of each row beside it)."""
    ax = _ax(ax, (5.2, 4.6))
    C = report.confusion.double()
    rows = C.sum(1, keepdim=True)
    F = (C / rows.clamp_min(1)).numpy()
    image = ax.imshow(F, cmap="Blues", vmin=0, vmax=1)
    k = len(F)
    for i in range(k):
        for j in range(k):
            if C[i, j] > 0:
                ax.text(j, i, f"{F[i, j]:.2f}"[1:] if F[i, j] < 1 else "1", ha="center", va="center", fontsize=8,
                        color="w" if F[i, j] > 0.6 else "k")
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_yticklabels([f"{i} ({int(r)})" for i, r in enumerate(rows.flatten().tolist())])
    ax.set_xlabel("the map's memory")
    ax.set_ylabel("simulation's memory (states)")
    ax.set_title(title)
    plt.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the row")
    return ax
