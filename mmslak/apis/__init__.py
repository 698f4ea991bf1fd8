"""Run-config glue of the tools: configs read, the CPU launcher, mixed precision, hooks, runner.

Each piece changes a config (or builds from one) the way ``tools/train.py``, ``tools/test.py``
and the analysis tools need; the layers below (``engine``, ``models``) know nothing of them.
"""
from .amp import enable_amp
from .cpu_launcher import cpu_model_wrapper_cfg, prepare_launcher
from .cpu_process_group import init_cpu_process_group
from .downstream_model import (DOWNSTREAM_SCOPES, build_downstream_model, dummy_batch,
                               load_downstream_config, slak_backbone_config)
from .run_hooks import add_training_safeguards, enable_visualization
from .runner import build_runner
from .tool_config import TASKS, add_common_args, load_config, task_of

__all__ = [
    'DOWNSTREAM_SCOPES', 'TASKS', 'add_common_args', 'add_training_safeguards',
    'build_downstream_model', 'build_runner', 'cpu_model_wrapper_cfg', 'dummy_batch',
    'enable_amp', 'enable_visualization', 'init_cpu_process_group', 'load_config',
    'load_downstream_config', 'prepare_launcher', 'slak_backbone_config', 'task_of'
]
