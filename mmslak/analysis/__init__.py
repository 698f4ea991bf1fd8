"""Analysis helpers behind the command-line tools: downstream configs, complexity and ERF."""
from mmslak.checkpoint import load_weights as load_whole_model  # the name projects/ import
from .complexity import complexity_by_group, simulate_sparsity, slak_stage_groups
from .downstream_config import (DOWNSTREAM_SCOPES, build_downstream_model, dummy_batch,
                                load_downstream_config, slak_backbone_config)
from .erf import accumulate_erf, high_contribution_area_ratios, log_normalise, save_erf_figure
from .plain_ops import plain_ops

__all__ = [
    'DOWNSTREAM_SCOPES', 'accumulate_erf', 'build_downstream_model', 'complexity_by_group',
    'dummy_batch', 'high_contribution_area_ratios', 'load_downstream_config', 'load_whole_model',
    'log_normalise', 'plain_ops', 'save_erf_figure', 'simulate_sparsity', 'slak_backbone_config',
    'slak_stage_groups'
]
