from mmslak.registry import HOOKS
from .dynamic_sparsity_hook import DynamicSparsityHook


@HOOKS.register_module()
class SparseMaskHook(DynamicSparsityHook):
    """Keep the sparse weights of SLaK backbones built with ``sparse=True`` exactly sparse.

    The fixed-mask case of :class:`DynamicSparsityHook`: the masks are those the model holds
    (loaded, or derived from the zeros of the loaded weights), re-applied after every optimizer
    step and never updated, so fine-tuning keeps exactly the zero pattern of the loaded weights.

    Args:
        plot (bool): Save ``density_per_layer.png`` into the work dir. Defaults to True.

    Example:
        >>> custom_hooks = [dict(type='mmslak.SparseMaskHook')]
    """

    def __init__(self, plot=True):
        super().__init__(sparsity=0., distribution='from_weights', update_interval=None,
                         plot=plot)
