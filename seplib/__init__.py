"""seplib: find separatrices with deep Koopman eigenfunctions.

The public card (the names a chapter needs, importable from ``seplib``):

    systems   System, bistable_1d, bistable_2d, duffing, curved_bistable, mutual_inhibition,
              bistable_nd (d dimensions, separatrix known exactly), saddle_nd (the same with a
              separatrix that bends both ways, a saddle off the middle and off the origin),
              multistable_nd and wells_nd (2^bits and k basins, known exactly), analytic_kef_1d
    rnn       FlipFlopRNN, load_flipflop_gru, book_card, gru_vector_field
    kef       fit_kef(field, a, b, ...): the one entry point, any dimension (returns a KEF:
              psi(x), .eigenvalue, .mean_, .loss_history_, .fit_seconds_); its recipe: Recipe
              (Recipe.low_dim() for 1-3 dimensions), Training, Refinement; KEF, default_device
    sampling  Sampling (where to sample), sampling_region (the Sampling for a and b, any
              dimension), MultiscaleGaussian, trajectory_pairs
    flow      integrate, find_attractors, separatrix_point, find_saddle, find_saddles (Newton
              from points, no attractors needed), saddle_normal, linearisation (the saddle's
              hyperplane, used like psi: the baseline), basin_labels, expansion_rate, jacobian
    validate  basin_agreement, separatrix_error, validate_kef, grid, segment_clouds
    basins    basin_map (every memory's basin from KEFs: a BasinMap, bm(x) -> index), find_memories,
              find_edges (the saddles between neighbouring memories), validate_basin_map
    perturb   smallest_flip (nearest point of psi = 0, optionally masked), flips and
              flip_verdict (checked by simulation), refine_flip (psi's direction, the length
              by simulation), brute_force_flip (bisection along directions, by simulation)

Figures and sliders are imported from their modules:

    seplib.plots     phase_portrait, samples, trajectories, kef_levels, basin_mismatch, kef_1d,
                     loss_curve, kef_slice (a plane through d dimensions)
    seplib.widgets   kef_panel, frames_slider

Machinery a chapter does not call: ``_fast`` (CPU kernels for fit_kef), ``_training`` (fit_kef's
bookkeeping: argument checks, batches, stop rule, weight average, warnings), ``_guards`` (what a
field returns, what reaches torch.linalg).
"""
from .basins import BasinMap, basin_map, find_edges, find_memories, validate_basin_map
from .flow import (basin_labels, expansion_rate, find_attractors, find_saddle, find_saddles, integrate,
                   jacobian, linearisation, saddle_normal, separatrix_point)
from .kef import KEF, Recipe, Refinement, Training, default_device, fit_kef
from .perturb import brute_force_flip, flip_verdict, flips, refine_flip, smallest_flip
from .rnn import FlipFlopRNN, book_card, gru_vector_field, load_flipflop_gru
from .sampling import MultiscaleGaussian, Sampling, sampling_region, trajectory_pairs
from .systems import (System, analytic_kef_1d, bistable_1d, bistable_2d, bistable_nd, curved_bistable,
                      duffing, multistable_nd, mutual_inhibition, saddle_nd, wells_nd)
from .validate import basin_agreement, grid, segment_clouds, separatrix_error, validate_kef

__version__ = "0.1.0"
