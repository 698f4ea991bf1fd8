from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor

from mmslak.registry import OPTIM_WRAPPER_CONSTRUCTORS

PARAMWISE_KEYS = ('num_layers', 'decay_rate', 'decay_type', 'custom_keys')


def get_layer_id_layer_wise(name, num_layers):
    """Layer id of a parameter for layer-wise decay (the ConvNeXt/SLaK convention).

    Stem 0, stage 0 blocks 1, stage 1 and its downsampling 2, stage 2's downsampling 3 and its
    blocks ``3 + block // 3``, stage 3 and its downsampling ``num_layers``; everything outside the
    backbone ``num_layers + 1``.
    """
    parts = name.split('.')
    if name.startswith('backbone.downsample_layers'):
        return {0: 0, 1: 2, 2: 3, 3: num_layers}[int(parts[2])]
    if name.startswith('backbone.stages'):
        stage, block = int(parts[2]), int(parts[3])
        return {0: 1, 1: 2, 2: 3 + block // 3, 3: num_layers}[stage]
    return num_layers + 1


def get_layer_id_stage_wise(name, max_layer_id):
    """Layer id of a parameter for stage-wise decay: downsampling 0, stage ``i`` blocks ``i + 1``,
    everything else (output norms, neck, heads) ``max_layer_id - 1``."""
    if name.startswith('backbone.downsample_layers'):
        return 0
    if name.startswith('backbone.stages'):
        return int(name.split('.')[2]) + 1
    return max_layer_id - 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LearningRateDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Optimizer constructor with layer-wise or stage-wise learning-rate decay for SLaK.

    A parameter with layer id ``i`` gets ``lr * decay_rate ** (num_layers + 1 - i)``, where
    ``num_layers`` is ``paramwise_cfg['num_layers']``; 1-D parameters (norms, ``gamma``) and biases
    get no weight decay. Layer ids follow the official ConvNeXt/SLaK detection and segmentation code
    (see :func:`get_layer_id_layer_wise` and :func:`get_layer_id_stage_wise`).

    ``paramwise_cfg`` keys:

    - ``num_layers`` (int): Number of layers of the schedule, e.g. 6 or 12.
    - ``decay_rate`` (float): Multiplier per layer, e.g. 0.9.
    - ``decay_type`` (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults to ``'layer_wise'``.
    - ``custom_keys`` (dict): As in mmengine's ``DefaultOptimWrapperConstructor``: parameters
      whose name contains a key (the longest matching key wins) get its ``lr_mult`` and
      ``decay_mult`` on top of their layer's learning rate and weight decay, e.g.
      ``{'fc_cls.centroids': dict(lr_mult=10.)}``. Optional.

    Example:
        >>> optim_wrapper = dict(
        ...     constructor='mmslak.LearningRateDecayOptimizerConstructor',
        ...     optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        ...     paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
    """

    def add_params(self, params, module, **kwargs):
        missing = {'num_layers', 'decay_rate'} - set(self.paramwise_cfg)
        if missing:
            raise ValueError('LearningRateDecayOptimizerConstructor needs paramwise_cfg keys '
                             f'num_layers and decay_rate; missing {sorted(missing)}')
        unknown = set(self.paramwise_cfg) - set(PARAMWISE_KEYS)
        if unknown:
            raise ValueError(f'LearningRateDecayOptimizerConstructor takes the paramwise_cfg keys '
                             f'{PARAMWISE_KEYS}; got {sorted(unknown)}')
        custom_keys = self.paramwise_cfg.get('custom_keys', {})
        # the longest key first, as mmengine's constructor matches them
        custom_order = sorted(sorted(custom_keys), key=len, reverse=True)
        for key in custom_order:
            extra = set(custom_keys[key]) - {'lr_mult', 'decay_mult'}
            if extra:
                raise ValueError(f'custom_keys[{key!r}] takes lr_mult and decay_mult; got '
                                 f'{sorted(extra)}')
        decay_type = self.paramwise_cfg.get('decay_type', 'layer_wise')
        if decay_type not in ('layer_wise', 'stage_wise'):
            raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")
        num_layers = self.paramwise_cfg['num_layers']
        decay_rate = self.paramwise_cfg['decay_rate']
        max_layer_id = num_layers + 2
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias')
            if decay_type == 'layer_wise':
                layer_id = get_layer_id_layer_wise(name, num_layers)
            else:
                layer_id = get_layer_id_stage_wise(name, max_layer_id)
            group_name = f'layer_{layer_id}_{"no_decay" if no_decay else "decay"}'
            key = next((key for key in custom_order if key in name), None)
            multipliers = custom_keys.get(key, {})
            if key is not None:
                group_name += f'_{key}'
            if group_name not in groups:
                scale = decay_rate**(max_layer_id - layer_id - 1) * multipliers.get('lr_mult', 1.)
                weight_decay = 0. if no_decay else self.base_wd * multipliers.get('decay_mult', 1.)
                groups[group_name] = dict(
                    params=[],
                    param_names=[],
                    lr=scale * self.base_lr,
                    lr_scale=scale,
                    weight_decay=weight_decay,
                    group_name=group_name)
            groups[group_name]['params'].append(param)
            groups[group_name]['param_names'].append(name)
        summary = ', '.join(f'{name}: {len(group["params"])} params, lr x{group["lr_scale"]:.4f}'
                            for name, group in sorted(groups.items()))
        print_log(f'Learning-rate decay ({decay_type}, rate {decay_rate}): {summary}',
                  logger='current')
        params.extend(groups.values())
