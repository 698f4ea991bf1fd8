"""Tensors derived from a module's parameters for inference, rebuilt when the parameters change."""
import torch


def cached(owner, name, sources, build):
    """``build()``, computed once and kept on ``owner`` until one of ``sources`` changes.

    A source changes when it is replaced by another tensor (``load_state_dict(assign=True)``,
    ``.to()``), when its storage moves (``.data =``) or when it is modified in place (an
    optimizer step, ``load_state_dict``), which bumps its version counter. The entry holds the
    sources themselves, so a freed tensor's address cannot be mistaken for its replacement.
    In-place writes through ``.data`` bump no version counter: modules that cache take
    :class:`InferenceCacheMixin`, which drops their entries in ``train()``, so such writes count
    from the next ``.eval()``.

    Args:
        owner (nn.Module): The module that keeps the entry.
        name (str): Name of the entry.
        sources (Sequence[Tensor]): The tensors ``build`` reads.
        build (Callable[[], Any]): Computes the derived value; called without gradients.

    Returns:
        Any: The value ``build`` returned for the current sources.
    """
    key = [(tensor, tensor.data_ptr(), tensor._version) for tensor in sources]
    entries = owner.__dict__.setdefault('_inference_cache', {})
    entry = entries.get(name)
    if entry is None or len(entry[0]) != len(key) or any(
            old is not new or old_ptr != new_ptr or old_version != new_version
            for (old, old_ptr, old_version), (new, new_ptr, new_version) in zip(entry[0], key)):
        with torch.no_grad():
            entry = entries[name] = (key, build())
    return entry[1]


class InferenceCacheMixin:
    """For modules that use :func:`cached`: switching the mode (``train()``, ``eval()``) drops
    their entries."""

    def train(self, mode=True):
        """Set the training mode and drop the cached inference weights."""
        self.__dict__.pop('_inference_cache', None)
        return super().train(mode)
