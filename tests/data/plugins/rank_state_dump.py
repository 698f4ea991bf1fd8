"""A test-only hook that saves what each process of a data-parallel run holds after training.

Configs import it with ``custom_imports=dict(imports=['mmslak', 'rank_state_dump'])`` and this
folder on ``PYTHONPATH``.
"""
import os.path as osp

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Write ``rank{R}_state.pth`` into the work dir: the model's state dict, the wrapper and
    norm layer types, the world size, the process group's backend and the parameter groups."""

    priority = 'LOWEST'

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        groups = [
            dict(name=group['group_name'], initial_lr=group['initial_lr'],
                 weight_decay=group['weight_decay'], param_names=group['param_names'])
            for group in runner.optim_wrapper.optimizer.param_groups
        ]
        state = dict(
            state_dict={name: tensor.detach().clone()
                        for name, tensor in model.state_dict().items()},
            wrapper_classes=[cls.__name__ for cls in type(runner.model).__mro__],
            norm_types=sorted({type(module).__name__ for module in model.modules()
                               if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)}),
            world_size=runner.world_size,
            backend=torch.distributed.get_backend(),
            param_groups=groups)
        torch.save(state, osp.join(runner.work_dir, f'rank{runner.rank}_state.pth'))
