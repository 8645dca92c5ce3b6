"""seplib: find separatrices with deep Koopman eigenfunctions.

The public card (everything a chapter needs):

    systems   bistable_1d, bistable_2d, duffing, curved_bistable, mutual_inhibition,
              analytic_kef_1d
    rnn       FlipFlopRNN, load_flipflop_gru, gru_vector_field
    sampling  MultiscaleGaussian, trajectory_pairs
    kef       fit_kef  (returns a KEF: psi(x), .loss_history_)
    flow      integrate, find_attractors, separatrix_point, find_saddle, basin_labels,
              expansion_rate
    validate  basin_agreement, separatrix_error, validate_kef
    plots     phase_portrait, kef_levels, kef_1d, trajectories, loss_curve
    widgets   kef_panel, kef_frames
"""
from .flow import (basin_labels, expansion_rate, find_attractors, find_saddle, integrate,
                   separatrix_point)
from .kef import KEF, default_device, fit_kef
from .rnn import FlipFlopRNN, gru_vector_field, load_flipflop_gru
from .sampling import MultiscaleGaussian, trajectory_pairs
from .systems import (System, analytic_kef_1d, bistable_1d, bistable_2d, curved_bistable, duffing,
                      mutual_inhibition)
from .validate import basin_agreement, grid, separatrix_error, validate_kef

__version__ = "0.1.0"
