"""Tensors an op derives from weights (folded, packed), kept until one of those weights changes.

An entry is keyed by its source tensors and checked at every lookup: each source must be the same
tensor object, on the same storage (held by a weak reference, so that the cache neither keeps old
weights alive nor mistakes a new storage at a freed one's address for it), at the same offset,
with the same shape and dtype, at the same version (in-place writes, an optimizer step and
``load_state_dict`` bump it). Moving or converting a module (``.to()``,
``.half()``, ``.data =``) gives its parameters new storage. Only writes through ``.data``, which
autograd does not see either, are invisible: call :func:`clear_weight_cache` after one.

Entries live here, not on the modules, so that copies and pickles of a model carry none (oneDNN's
packed weights can be neither copied nor pickled), and go with the first source tensor.
"""
import weakref

import torch
from torch.multiprocessing.reductions import StorageWeakRef

_ENTRIES = {}  # id(first source) -> {name: (fingerprints, derived)}


def _version(tensor):
    """The version counter of ``tensor``; inference tensors have none (and cannot be modified
    in place outside inference mode)."""
    return None if tensor.is_inference() else tensor._version


class _Fingerprint:
    """What identifies the contents of a source tensor, without holding it or its storage."""

    def __init__(self, tensor):
        self.tensor = weakref.ref(tensor)
        self.storage = StorageWeakRef(tensor.untyped_storage())
        self.layout = (tensor.storage_offset(), tensor.shape, tensor.stride(), tensor.dtype)
        self.version = _version(tensor)

    def matches(self, tensor):
        return self.tensor() is tensor and not self.storage.expired() and \
            self.storage.cdata == tensor.untyped_storage()._cdata and \
            self.layout == (tensor.storage_offset(), tensor.shape, tensor.stride(),
                            tensor.dtype) and self.version == _version(tensor)


def cached(name, sources, build):
    """``build()``, computed once and kept until a source changes.

    Args:
        name (str): What is derived (one entry per name and first source).
        sources (Sequence[Tensor]): The weights ``build`` reads, compared by identity and
            version; the entry lives as long as the first.
        build (Callable[[], Any]): Computes the derived value; called without gradients.

    Returns:
        Any: The value ``build`` returned for the current sources.
    """
    key = id(sources[0])
    entries = _ENTRIES.get(key)
    if entries is None:
        entries = _ENTRIES[key] = {}
        weakref.finalize(sources[0], _ENTRIES.pop, key, None)
    entry = entries.get(name)
    if entry is None or len(entry[0]) != len(sources) or not all(
            map(_Fingerprint.matches, entry[0], sources)):
        with torch.no_grad():
            entry = entries[name] = ([_Fingerprint(t) for t in sources], build())
    return entry[1]


def cached_names(tensor):
    """The names of the entries kept for ``tensor`` as first source (for tests and tools)."""
    return set(_ENTRIES.get(id(tensor), {}))


def clear_weight_cache():
    """Drop every entry (after writing to weights through ``.data``)."""
    _ENTRIES.clear()
