"""Many memories: every attractor, the saddles between neighbouring basins, and one map of all
the basins composed from KEFs.

A KEF answers "a or b?". With k memories the state space is cut by several boundary sheets,
each the stable manifold of saddles with one unstable direction, and two basins are neighbours
where such a saddle sits between them: its unstable manifold runs to one memory on each side
(an "edge"). ``basin_map`` trains one KEF for an edge, refined by simulation near the other edges
of its sheet too, keeps it for every other edge whose saddle its zero set also passes through (a
sheet that several pairs share, as in a flip-flop of independent bits), and trains another only
for the edges left. A state is then in basin i when
every KEF of i's edges puts it on i's side; the map returns the memory whose worst margin is
largest, so a state always gets one answer, and ``validate_basin_map`` says by simulation how
often it is right.
"""
import time
import warnings
from typing import NamedTuple

import torch

from ._guards import _short, as_field, as_states, check_count, psi_of
from .flow import (_attractors, _unstable, final_state, find_attractors, integrate, jacobian, merge_ends,
                   newton_steps, settle)
from .kef import Recipe, Sheet, _fit
from .sampling import sampling_region

SIDE_STEP = 0.05      # the test points beside a saddle, along its unstable direction: x |a_i - a_j|
VALLEY = 0.05         # find_memories: one memory where the flow between two ends is this slow
RELATIVE_TOL = 0.5    # settled once twice as far from every other memory (slow manifolds: flow.settle)


class Edges(NamedTuple):
    """Neighbouring basins: ``pairs[n] = (i, j)`` (indices into the attractors, i < j), the saddle
    between them ``saddles[n]`` and its unstable rate ``rates[n]``, and its unit unstable
    direction ``directions[n]``, pointing towards attractor j."""
    pairs: list
    saddles: torch.Tensor
    rates: torch.Tensor
    directions: torch.Tensor


def _settled(field, x, attractors, T, relative_tol=RELATIVE_TOL):
    return settle(field, x, attractors, T, relative_tol=relative_tol)[0]


def find_memories(field, dim, n_starts=1024, T=60.0, spread=2.0, seed=0, merge=None, rounds=2):
    """Every attractor of ``field`` that random starts and the region between the memories reach.

    First ``find_attractors`` (``n_starts`` starts of norms spread / 100 to spread); then, for
    ``rounds`` more rounds, ``n_starts`` starts spread over the region the memories found so far
    span (random mixtures of them, plus noise of their spread): a memory whose basin the first
    starts missed lies between the others in a network that holds many. A point counts as a
    memory only if at least 1% of a round's starts settle there and its Jacobian has no unstable
    direction (a saddle's stable manifold catches a start or two). Two ends count as one memory
    when the flow along the segment between them is nearly stopped (a slow manifold: at most
    ``VALLEY`` times the median, over all pairs, of the fastest speed along the segment per unit
    of its length), however far apart they are. Returns ``[k, dim]``, sorted by coordinates.
    """
    check_count(rounds, "rounds", minimum=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # one attractor after the first round is not the end
        found = find_attractors(field, dim, n_starts, T, spread, seed, merge=merge)
    merge_radius = 10 * 1e-2 if merge is None else merge
    gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(rounds):
        k = len(found)
        weights = torch.rand(n_starts, k, generator=gen) ** 3
        weights = weights / weights.sum(-1, keepdim=True)
        scale = (found - found.mean(0)).norm(dim=-1).mean() / dim**0.5 if k > 1 else spread / dim**0.5
        x0 = weights @ found + scale * torch.randn(n_starts, dim, generator=gen)
        new = _stopped_ends(field, x0, T, merge_radius, max(2, n_starts // 100))
        fresh = [c for c in new if (found - c).norm(dim=-1).min() >= merge_radius]
        if not fresh:
            break
        found = torch.cat((found, torch.stack(fresh)))
    found = _one_per_valley(field, found)
    stable = [c for c in found if _unstable(torch.linalg.eigvals(jacobian(field, c[None])[0].double()),
                                            relative=1e-2) == 0]
    if len(stable) < 2:
        raise RuntimeError(f"find_memories found {len(stable)} stable point(s) from {n_starts} starts: a basin "
                           "map needs two or more. Pass more n_starts, another spread or a longer T")
    stable = sorted(stable, key=lambda c: tuple(round(v, 4) for v in c.tolist()))
    return torch.stack(stable)


def _one_per_valley(field, found, n=17):
    """One end per memory: ends joined by a segment along which the flow nearly stops (the
    speed per unit length at most VALLEY times the median over all pairs) are one memory."""
    k = len(found)
    if k < 3:
        return found
    s = torch.linspace(0, 1, n)[:, None, None]
    i, j = torch.triu_indices(k, k, offset=1)
    segments = found[i] + s * (found[j] - found[i])             # [n, pairs, d]
    with torch.no_grad():
        fastest = field(segments).norm(dim=-1).max(dim=0).values
    ratio = fastest / (found[j] - found[i]).norm(dim=-1)
    same = ratio < VALLEY * ratio.median()
    root = list(range(k))

    def top(a):
        while root[a] != a:
            a = root[a]
        return a

    for a, b in zip(i[same].tolist(), j[same].tolist()):
        root[top(b)] = top(a)
    return found[sorted({top(a) for a in range(k)})]


def _stopped_ends(field, x0, T, merge, least, tol=1e-2):
    """The points where the flow from ``x0`` has stopped after T, merged within ``merge``, each
    reached by at least ``least`` starts."""
    ends = final_state(field, x0, T)
    with torch.no_grad():
        speed = field(ends).norm(dim=-1)
    centres, counts = merge_ends(ends[torch.isfinite(speed) & (speed < tol)], merge)
    return [c for c, n in zip(centres, counts) if n >= least]


def _boundary_points(field, attractors, n_scan, T, n_iter=14):
    """Along the segment between every pair of memories, the first place where the basin
    changes, by bisection: ``(points [m, d], (from, to) [m, 2])``."""
    k, d = attractors.shape
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    s = torch.linspace(0, 1, n_scan + 2)[1:-1]
    starts = torch.stack([attractors[i] for i, _ in pairs])
    steps = torch.stack([attractors[j] - attractors[i] for i, j in pairs])
    line = starts[:, None] + s[None, :, None] * steps[:, None]
    labels = _settled(field, line.reshape(-1, d), attractors, T).reshape(len(pairs), n_scan)
    lo, hi, own, other = [], [], [], []
    for p, (i, _) in enumerate(pairs):
        changed = (labels[p] != i).nonzero()
        if not len(changed):
            continue
        n = changed[0].item()
        to = labels[p, n].item()
        if to < 0:
            continue
        lo.append(line[p, n - 1] if n > 0 else attractors[i])
        hi.append(line[p, n])
        own.append(i)
        other.append(to)
    if not lo:
        return attractors.new_zeros(0, d), torch.zeros(0, 2, dtype=torch.long)
    other = torch.tensor(other)
    return (_bisect_to(field, torch.stack(lo), torch.stack(hi), other, attractors, T, n_iter),
            torch.stack((torch.tensor(own), other), dim=1))


def _bisect_to(field, lo, hi, other, attractors, T, n_iter):
    """Bisection between the rows of ``lo`` (not in basin ``other``) and ``hi`` (in it), by
    simulation to every memory: the midpoints after ``n_iter`` halvings."""
    for _ in range(n_iter):
        mid = (lo + hi) / 2
        there = _settled(field, mid, attractors, T) == other
        hi = torch.where(there[:, None], mid, hi)
        lo = torch.where(there[:, None], lo, mid)
    return (lo + hi) / 2


def _newton(field, x, steps, longest, tol):
    """Newton's method on f = 0 from every row of x at once (``flow.newton_steps``), keeping the
    points where |f| ends below ``tol``."""
    x = newton_steps(field, x, steps, longest)
    with torch.no_grad():
        speed = field(x).norm(dim=-1)
    return x[speed < tol]


def find_edges(field, attractors, n_scan=32, T=60.0, newton_steps=40):
    """The saddles with one unstable direction between neighbouring basins, and which basins
    each one joins.

    Along the segment between every pair of memories, bisection on simulated trajectories finds
    where the basin first changes; Newton's method on f = 0 from those boundary points reaches
    the fixed points there, and those with one unstable direction are kept. Each saddle's
    unstable manifold, followed both ways from the saddle, reaches the two memories it joins.
    Returns ``Edges``, one per pair of neighbours (the fastest saddle where several join one
    pair), sorted by pair. A pair that is not listed shares no boundary with a saddle on it that
    these starts reach.
    """
    field = as_field(field)
    attractors = torch.as_tensor(attractors, dtype=torch.float32)
    attractors = _attractors(attractors, attractors[:0])
    check_count(n_scan, "n_scan")
    k, d = attractors.shape
    points, between = _boundary_points(field, attractors, n_scan, T)
    gap = torch.cdist(attractors, attractors)
    nearest = gap[gap > 0].min().item()
    tol = 1e-5 * max(1.0, nearest)
    saddles, rates, directions, pairs = [], [], [], []
    _add_saddles(field, _newton(field, points, newton_steps, 0.1 * nearest, tol), attractors, nearest, T,
                 saddles, rates, directions, pairs)
    # Where Newton's method from a boundary point reached no saddle of that boundary (a source
    # nearer, where three basins meet), follow the boundary to its saddle first: edge tracking
    missing = [n for n, (i, j) in enumerate(between.tolist()) if (min(i, j), max(i, j)) not in pairs]
    if missing:
        tracked = _track(field, points[missing], between[missing], attractors, T)
        _add_saddles(field, _newton(field, tracked, newton_steps, 0.1 * nearest, tol), attractors, nearest, T,
                     saddles, rates, directions, pairs)
    keep = {}
    for n, p in enumerate(pairs):   # one saddle per pair: the fastest
        if p not in keep or rates[n] > rates[keep[p]]:
            keep[p] = n
    order = [keep[p] for p in sorted(keep)]
    if not order:
        raise RuntimeError(f"find_edges found no saddle between any two of the {k} memories (Newton's method from "
                           "the boundary points along their segments reached none with one unstable direction): "
                           "check that the memories are attractors of this field")
    return Edges([pairs[n] for n in order], torch.stack([saddles[n] for n in order]),
                 torch.tensor([rates[n] for n in order]), torch.stack([directions[n] for n in order]))


def _track(field, points, between, attractors, T, rounds=12, tau=1.0, n_iter=12):
    """Edge tracking on many boundary points at once: flow each for ``tau`` (towards the saddle
    of its boundary), then bisect again across the boundary between its two memories, along the
    step between them, within 5% of it."""
    width = 0.05 * (attractors[between[:, 1]] - attractors[between[:, 0]])
    x = points
    for _ in range(rounds):
        x = final_state(field, x, tau)
        x = _bisect_to(field, x - width, x + width, between[:, 1], attractors, T, n_iter)
    return x


def _add_saddles(field, fixed, attractors, nearest, T, saddles, rates, directions, pairs):
    """Append the fixed points with one unstable direction (new ones only) and the two memories
    their unstable manifold reaches."""
    for s in fixed:
        if any((s - t).norm() < 1e-3 * nearest for t in saddles):
            continue
        values, vectors = torch.linalg.eig(jacobian(field, s[None])[0].double())
        if _unstable(values) != 1:
            continue
        v = vectors[:, values.real.argmax()].real.to(s.dtype)
        v = v / v.norm()
        ends = _settled(field, torch.stack((s - SIDE_STEP * nearest * v, s + SIDE_STEP * nearest * v)),
                        attractors, T)
        i, j = ends.tolist()
        if i < 0 or j < 0 or i == j:
            continue
        if i > j:
            i, j, v = j, i, -v
        saddles.append(s)
        rates.append(values.real.max().item())
        directions.append(v)
        pairs.append((i, j))


class BasinMap:
    """Which memory's basin a state lies in, from KEFs: ``bm(x)``, ``[..., d] -> [...]`` (long),
    indices into ``bm.attractors``; no simulation at query time.

    ``attractors [k, d]``; ``edges`` (``Edges``: neighbouring pairs, their saddles, rates and
    unstable directions); ``saddles`` (``edges.saddles``); ``kefs`` (the KEFs trained); ``sheet``
    (for each edge, the index of the KEF whose zero set is its boundary) and ``orientation``
    (+1 where that KEF is positive on the side of the edge's second memory); ``fit_seconds_``.
    ``bm.sides(x, j)`` (``[..., n]``): each KEF of memory j's n edges, signed positive on j's side
    and divided by the KEF's size at the memories; ``bm.margins(x)`` (``[..., k]``): for each
    memory the smallest of its sides; ``bm(x)`` is the argmax of the margins.
    """

    def __init__(self, attractors, edges, kefs, sheet, orientation, scales):
        self.attractors, self.edges, self.kefs = attractors, edges, kefs
        self.sheet, self.orientation, self.scales = sheet, orientation, scales
        self.dim = attractors.shape[-1]
        self.degree = [sum(j in e for e in edges.pairs) for j in range(len(attractors))]   # edges per memory
        self.fit_seconds_ = None

    @property
    def saddles(self):
        return self.edges.saddles

    def margins(self, x):
        psi = self._scaled_psi(x)
        none = torch.full(psi.shape[:-1], -float("inf"), dtype=psi.dtype, device=psi.device)
        return torch.stack([self._sides(psi, j).min(-1).values if self.degree[j] else none
                            for j in range(len(self.attractors))], dim=-1)

    def sides(self, x, j):
        """``[..., n]``: each KEF of memory j's n edges at x, positive on j's side and divided by
        the KEF's size at the memories; x is in j's region of the map where all are > 0."""
        return self._sides(self._scaled_psi(x), j)

    def _scaled_psi(self, x):
        x = as_states(x, "x", self.dim)
        return torch.stack([psi_of(kef, x) / s for kef, s in zip(self.kefs, self.scales)], dim=-1)

    def _sides(self, psi, j):
        # o psi is > 0 on the side of the edge's second memory
        return torch.stack([(o if j == b else -o) * psi[..., c]
                            for (a, b), c, o in zip(self.edges.pairs, self.sheet, self.orientation)
                            if j in (a, b)], dim=-1)

    def __call__(self, x):
        with torch.no_grad():
            return self.margins(x).argmax(dim=-1)

    def __repr__(self):
        return (f"BasinMap({len(self.attractors)} memories, {len(self.edges.pairs)} edges, {len(self.kefs)} KEFs, "
                f"dim {self.dim})")


def _sides(kef, saddle, direction, step):
    """psi just before and just after the saddle along its unstable direction."""
    with torch.no_grad():
        return psi_of(kef, torch.stack((saddle - step * direction, saddle + step * direction))).tolist()


def basin_map(field, dim, attractors=None, rhs="standard", seed=0, device=None, progress=True, recipe=None,
              share=True):
    """The basins of every memory of ``field``, composed from KEFs: a ``BasinMap``.

    ``attractors`` None: ``find_memories``. The edges (neighbouring memories and the saddle
    between them) come from ``find_edges``. For each edge, fastest saddle first, a KEF is trained
    between its two memories (``fit_kef`` with the recipe, its samples centred on that saddle)
    unless one trained before already splits it (``share``): its sign changes across the
    saddle, within 5% of the pair's distance on either side along the unstable direction, the
    way it changes across the edge it was trained on. ``recipe``: as fit_kef's (its sampling
    "auto" is the edge's own region). ``attractors=None`` runs ``find_memories(field, dim)``
    with its defaults (starts of norm up to 2): on a network whose states span more, find the
    memories first with its ``spread`` and ``merge`` (chapter 8: sqrt(units), 0.1 sqrt(units)).

    A KEF is trained around one edge and shared by others far along its sheet, so its refinement
    (the recipe's ``Refinement``) also simulates the states nearest its zero set around the
    saddles of the edges it will likely share (``share``: those whose step between memories and
    whose unstable direction are parallel to its own), each to whichever memory it settles at,
    labelled by the side of the sheet that memory lies on (benchmarks/RESULTS.md, section 8).
    """
    start = time.perf_counter()
    field = as_field(field, dim)
    check_count(dim, "dim")
    if attractors is None:
        attractors = find_memories(field, dim)
    else:
        attractors = _attractors(torch.as_tensor(attractors, dtype=torch.float32), torch.zeros(0, dim))
        if len(attractors) < 2:
            raise ValueError(f"attractors holds {len(attractors)} point: a basin map needs two or more memories, "
                             "[k, d] (or attractors=None to find them)")
    recipe = Recipe() if recipe is None else recipe
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe must be None or a seplib.Recipe, got {type(recipe).__name__}")
    edges = find_edges(field, attractors)
    gap = torch.cdist(attractors, attractors)
    kefs, sheet, orientation = [], [None] * len(edges.pairs), [None] * len(edges.pairs)
    groups = _parallel_edges(edges, attractors)
    for n in edges.rates.argsort(descending=True).tolist():
        (i, j), s, v = edges.pairs[n], edges.saddles[n], edges.directions[n]
        step = SIDE_STEP * gap[i, j].item()
        if share:
            for c, kef in enumerate(kefs):
                before, after = _sides(kef, s, v, step)
                if before * after < 0:
                    sheet[n], orientation[n] = c, 1.0 if after > 0 else -1.0
                    break
        if sheet[n] is not None:
            continue
        edge_recipe = recipe
        if recipe.sampling == "auto":
            edge_recipe = Recipe(sampling_region(field, attractors[i], attractors[j], saddle=s), recipe.training,
                                 recipe.refinement, recipe.model)
        if progress:
            print(f"KEF {len(kefs) + 1}: memories {i} and {j} (saddle {n})", flush=True)
        sheet_info = _sheet(field, attractors, edges, n, [e for e in groups[n] if sheet[e] is None] if share else [],
                            seed)
        kef = _fit(field, attractors[i], attractors[j], rhs, "auto", None, seed, device, progress, edge_recipe,
                   sheet=sheet_info)
        before, after = _sides(kef, s, v, step)
        kefs.append(kef)
        sheet[n], orientation[n] = len(kefs) - 1, 1.0 if after > before else -1.0
    with torch.no_grad():
        scales = [psi_of(kef, attractors).abs().median().clamp_min(1e-12).item() for kef in kefs]
    bm = BasinMap(attractors, edges, kefs, sheet, orientation, scales)
    _check_code_book(bm)
    bm.fit_seconds_ = time.perf_counter() - start
    return bm


def _parallel_edges(edges, attractors, cos=0.9):
    """For each edge, the edges that likely share its boundary sheet: the step between their
    memories and their saddles' unstable directions both parallel to its own (|cos| > 0.9; 0.96
    and above in our 3-bit networks, 0.81 between edges of five wells round a circle), as
    the edges that flip one bit of a flip-flop are. Only a guess, for where to refine: which
    edges a KEF splits is checked after training."""
    step = torch.stack([attractors[j] - attractors[i] for i, j in edges.pairs])
    step = step / step.norm(dim=-1, keepdim=True)
    together = ((step @ step.T).abs() > cos) & ((edges.directions @ edges.directions.T).abs() > cos)
    return [together[n].nonzero().flatten().tolist() for n in range(len(edges.pairs))]


def _sheet(field, attractors, edges, n, group, seed, per_group=512):
    """The ``kef.Sheet`` for the KEF of edge n: each memory's side of the boundary (from the
    edges guessed to share it: the memory of each that lies along the step from a to b is on
    b's side), and probes around every other such edge's saddle."""
    i, j = edges.pairs[n]
    step = attractors[j] - attractors[i]
    sides = torch.zeros(len(attractors))
    blocks = []
    gen = torch.Generator().manual_seed(seed + 7)
    for e in set(group) | {n}:
        p, q = edges.pairs[e]
        s = 1.0 if (attractors[q] - attractors[p]) @ step > 0 else -1.0
        for m, side in ((q, s), (p, -s)):
            sides[m] = side if sides[m] in (0, side) else float("nan")
        if e != n:
            region = sampling_region(field, attractors[p], attractors[q], saddle=edges.saddles[e])
            blocks.append(region.sampler(attractors[p], attractors[q]).sample(per_group, gen))
    sides = torch.nan_to_num(sides, nan=0.0)   # a memory on both sides of the guess: unknown
    probes = torch.cat([b.reshape(-1, attractors.shape[1]) for b in blocks]) if blocks else attractors[:0]
    return Sheet(attractors, sides, probes, sum(len(b) for b in blocks))


def _check_code_book(bm):
    """Warn where the map does not put a memory in its own basin, or a point beside an edge's
    saddle on the wrong side."""
    wrong = (bm(bm.attractors) != torch.arange(len(bm.attractors))).nonzero().flatten().tolist()
    if wrong:
        warnings.warn(f"the basin map puts memories {wrong} outside their own basins: the KEFs' signs there do "
                      "not agree with their edges (a KEF shared by edges it does not split? pass share=False)",
                      RuntimeWarning, stacklevel=3)
    if not bm.edges.pairs:
        return
    gap = torch.cdist(bm.attractors, bm.attractors)
    step = torch.tensor([SIDE_STEP * gap[i, j] for i, j in bm.edges.pairs])[:, None]
    beside = torch.cat((bm.edges.saddles - step * bm.edges.directions, bm.edges.saddles + step * bm.edges.directions))
    expected = torch.tensor([i for i, _ in bm.edges.pairs] + [j for _, j in bm.edges.pairs])
    off = (bm(beside) != expected).sum().item()
    if off:
        warnings.warn(f"the basin map misplaces {off} of the {len(beside)} points beside its saddles (one on each "
                      "side of each edge): some boundary is not where a KEF's zero set is", RuntimeWarning,
                      stacklevel=3)


class BasinReport(NamedTuple):
    """``validate_basin_map``'s answer: ``agreement`` over the states simulation placed,
    ``per_memory`` (agreement among the states simulation put in each basin; NaN where none),
    ``confusion [k, k]`` (row: simulation's basin, column: the map's), ``unplaced`` (states
    simulation could not place), ``labels`` (simulation's, -1 unplaced)."""
    agreement: float
    per_memory: list
    confusion: torch.Tensor
    unplaced: int
    labels: torch.Tensor


def validate_basin_map(bm, field, x, labels=None, T=60.0, relative_tol=RELATIVE_TOL):
    """The map against simulation on the states ``x`` (``[N, d]``): a ``BasinReport``.
    ``labels``: simulation's basins if already known (else ``settle`` with the map's memories,
    ``relative_tol`` for memories on slow manifolds)."""
    if not isinstance(bm, BasinMap):
        raise ValueError(f"bm must be a seplib BasinMap (from sl.basin_map), got {type(bm).__name__}")
    x = as_states(x, "x", bm.dim).reshape(-1, bm.dim)
    if labels is None:
        labels = _settled(as_field(field, bm.dim), x, bm.attractors.to(x), T, relative_tol)
    labels = torch.as_tensor(labels).reshape(-1).long()
    predicted = bm(x)
    k = len(bm.attractors)
    placed = labels >= 0
    confusion = torch.zeros(k, k, dtype=torch.long)
    confusion.index_put_((labels[placed], predicted[placed]), torch.ones(int(placed.sum()), dtype=torch.long),
                         accumulate=True)
    agreement = (confusion.diagonal().sum() / confusion.sum().clamp_min(1)).item()
    per = [(confusion[i, i] / confusion[i].sum()).item() if confusion[i].sum() else float("nan") for i in range(k)]
    return BasinReport(agreement, per, confusion, int((~placed).sum()), labels)


def edge_clouds(bm, n=600, seed=0):
    """States around the segment of every edge's pair of memories (``segment_clouds``), and
    which edge each came from: ``(x [m n, d], edge [m n])``."""
    from .validate import segment_clouds
    xs, which = [], []
    for e, (i, j) in enumerate(bm.edges.pairs):
        xs.append(segment_clouds(bm.attractors[i], bm.attractors[j], n=n, seed=seed + e))
        which.append(torch.full((len(xs[-1]),), e))
    return torch.cat(xs), torch.cat(which)


def broad_cloud(attractors, n=3000, seed=0):
    """States over all the memories: random mixtures of them plus Gaussian noise of their
    spread, for a map's agreement everywhere between its memories."""
    attractors = torch.as_tensor(attractors, dtype=torch.float32)
    k, d = attractors.shape
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(n, k, generator=gen) ** 3
    weights = weights / weights.sum(-1, keepdim=True)
    scale = (attractors - attractors.mean(0)).norm(dim=-1).mean() / d**0.5
    return weights @ attractors + scale * torch.randn(n, d, generator=gen)
