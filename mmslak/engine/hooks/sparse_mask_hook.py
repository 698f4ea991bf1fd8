from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmslak.registry import HOOKS


@HOOKS.register_module()
class SparseMaskHook(Hook):
    """Keep the sparse weights of SLaK backbones built with ``sparse=True`` exactly sparse.

    Before training it applies the masks and logs the density per stage once; after every
    training iteration (that is, after each optimizer step) it zeroes the masked-out weights again,
    so fine-tuning keeps exactly the zero pattern of the loaded weights.

    Example:
        >>> custom_hooks = [dict(type='mmslak.SparseMaskHook')]
    """

    priority = 'NORMAL'

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._backbones = [
            module for module in model.modules()
            if getattr(module, 'sparse', False) and hasattr(module, 'apply_sparse_masks')
        ]
        if not self._backbones:
            raise ValueError('SparseMaskHook found no sparse backbone: build the SLaK backbone '
                             'with sparse=True, or remove the hook')
        for backbone in self._backbones:
            backbone.apply_sparse_masks()
            backbone.log_sparse_density()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        for backbone in self._backbones:
            backbone.apply_sparse_masks()
