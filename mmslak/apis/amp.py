"""The mixed-precision choice of ``tools/train.py``: fp16 on CUDA, bf16 on CPUs."""
import logging

import torch
from mmengine.logging import print_log


def enable_amp(cfg, force=False):
    """Mixed precision for the machine: fp16 with dynamic loss scaling on CUDA, bf16 on CPUs.

    With ``force`` (``tools/train.py --amp``) the optimizer wrapper becomes ``AmpOptimWrapper``
    on CUDA. On a machine without CUDA, where ``AmpOptimWrapper`` cannot run, a forced run or a
    config asking for ``AmpOptimWrapper`` trains with ``mmslak.CPUAmpOptimWrapper`` (bfloat16
    autocast, no loss scaling), which is logged.

    Args:
        cfg (Config): The config; changed in place.
        force (bool): Turn mixed precision on even if the config does not ask for it.
            Defaults to False.
    """
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        if force:
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        return
    if not force and wrapper.get('type') != 'AmpOptimWrapper':
        return
    print_log('Mixed precision without CUDA: training with mmslak.CPUAmpOptimWrapper (bfloat16 '
              'autocast, no loss scaling)', logger='current', level=logging.WARNING)
    wrapper.pop('loss_scale', None)
    wrapper.update(type='mmslak.CPUAmpOptimWrapper', dtype='bfloat16')
