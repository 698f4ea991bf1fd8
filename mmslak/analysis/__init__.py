"""Analysis helpers behind the command-line tools: complexity, ERF, the plain ops."""
# The config and loading helpers that projects/centroid_tailoring imports from here.
from mmslak.apis import build_downstream_model, load_downstream_config
from mmslak.checkpoint import load_weights as load_whole_model
from .complexity import complexity_by_group, simulate_sparsity, slak_stage_groups
from .erf import accumulate_erf, high_contribution_area_ratios, log_normalise, save_erf_figure
from .plain_ops import plain_ops

__all__ = [
    'accumulate_erf', 'build_downstream_model', 'complexity_by_group',
    'high_contribution_area_ratios', 'load_downstream_config', 'load_whole_model',
    'log_normalise', 'plain_ops', 'save_erf_figure', 'simulate_sparsity', 'slak_stage_groups'
]
