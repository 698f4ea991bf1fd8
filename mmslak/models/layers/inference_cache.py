"""Tensors derived from a module's parameters for inference, rebuilt when the parameters change."""
import torch


def _version(tensor):
    """The version counter of ``tensor``; inference tensors have none (and cannot be modified
    in place outside inference mode)."""
    return None if tensor.is_inference() else tensor._version


def _fingerprint(tensor):
    """What identifies the contents of ``tensor``: the tensor itself, a view that keeps its
    storage alive (so that no other tensor can take over its address) and its version."""
    return tensor, tensor.detach(), _version(tensor)


def _unchanged(fingerprint, tensor):
    old_tensor, old_view, old_version = fingerprint
    return old_tensor is tensor and old_view.data_ptr() == tensor.data_ptr() and \
        old_version == _version(tensor)


def cached(owner, name, sources, build):
    """``build()``, computed once and kept on ``owner`` until one of ``sources`` changes.

    A source changes when it is replaced by another tensor (``load_state_dict(assign=True)``),
    when its storage moves (``.data =``; the entry keeps the old storage alive, so a new one
    never has its address) or when it is modified in place (an optimizer step,
    ``load_state_dict``), which bumps its version counter. In-place writes through ``.data``
    bump no version counter: modules that cache take :class:`InferenceCacheMixin`, which drops
    their entries in ``train()`` (so such writes count from the next ``.eval()``) and in
    ``.to()`` and the other conversions.

    Args:
        owner (nn.Module): The module that keeps the entry.
        name (str): Name of the entry.
        sources (Sequence[Tensor]): The tensors ``build`` reads.
        build (Callable[[], Any]): Computes the derived value; called without gradients.

    Returns:
        Any: The value ``build`` returned for the current sources.
    """
    entries = owner.__dict__.setdefault('_inference_cache', {})
    entry = entries.get(name)
    if entry is None or len(entry[0]) != len(sources) or not all(
            map(_unchanged, entry[0], sources)):
        with torch.no_grad():
            entry = entries[name] = ([_fingerprint(tensor) for tensor in sources], build())
    return entry[1]


class InferenceCacheMixin:
    """For modules that use :func:`cached`: switching the mode (``train()``, ``eval()``) or
    converting the tensors (``.to()``, ``.cuda()``, ``.half()``: any ``nn.Module._apply``) drops
    their entries, and copies and pickles leave them out (oneDNN's packed weights can be
    neither copied nor pickled; the copy rebuilds its own at its first inference)."""

    def train(self, mode=True):
        """Set the training mode and drop the cached inference weights.

        Args:
            mode (bool): Training mode (True) or evaluation mode (False). Defaults to True.
        """
        self.__dict__.pop('_inference_cache', None)
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        """Convert the tensors with ``fn`` and drop the cached inference weights.

        The entries hold views of the old tensors: kept, they would hold a full copy of the
        weights until the next lookup, which never comes on a device without the fused CPU
        kernels. The parent's ``_apply`` calls each child's, so a converted model keeps none.

        Args:
            fn (Callable[[Tensor], Tensor]): The conversion of each parameter and buffer.
            recurse (bool): Whether to convert the children too. Defaults to True.
        """
        self.__dict__.pop('_inference_cache', None)
        return super()._apply(fn, recurse)

    def __getstate__(self):
        state = super().__getstate__()  # a copy of __dict__
        state.pop('_inference_cache', None)
        return state
