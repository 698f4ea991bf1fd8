import torch
from mmengine.hooks import Hook

from mmslak.registry import HOOKS


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is NaN or infinite.

    Without it a run whose loss turned non-finite logs ``loss: nan`` to the end, saves
    checkpoints and exits 0. It runs before the checkpoint hook, so the broken weights of that
    iteration are not saved. ``tools/train.py`` adds it to every run.

    Raises:
        RuntimeError: Naming the iteration and the non-finite loss terms.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        loss = (outputs or {}).get('loss')
        if loss is None or torch.isfinite(loss).all():
            return
        terms = ', '.join(f'{name}: {float(value)}' for name, value in outputs.items()
                          if torch.is_tensor(value) and not torch.isfinite(value).all())
        raise RuntimeError(
            f'The loss is not finite at iteration {runner.iter + 1} ({terms}); training stopped '
            'before saving these weights. Likely causes: non-finite weights loaded with '
            'load_from or init_cfg, a learning rate too high, or fp16 without loss scaling')
