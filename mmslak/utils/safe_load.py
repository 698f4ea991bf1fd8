"""The one place that widens ``torch.load(weights_only=True)``, as narrowly as each file needs.

Since torch 2.6, ``torch.load`` unpickles only allow-listed globals. Two kinds of files need more:

* checkpoints written by mmengine's ``Runner`` hold numpy arrays and scalars and the message
  hub's ``HistoryBuffer``, which pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``. :func:`allow_runner_checkpoints` (called by
  ``import mmslak``) allow-lists exactly these, and binds ``builtins.getattr`` to a stand-in that
  resolves nothing but those statistics methods;
* official SLaK files carry the training ``argparse.Namespace``: :func:`load_official_checkpoint`
  allows it for the duration of that one load only.
"""
import argparse
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import CheckpointLoader


def _history_buffer_method(owner, name):
    """Resolve ``getattr(HistoryBuffer, name)`` for statistics methods, refuse anything else."""
    if owner is HistoryBuffer and callable(getattr(HistoryBuffer, name, None)) and \
            not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'mmslak allows getattr only for HistoryBuffer statistics methods, not {owner!r}.{name}')


def _numpy_globals():
    """The numpy reconstructors of arrays, dtypes and scalars (numpy 1.x and 2.x paths)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    allowed = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    # numpy >= 1.25 pickles dtypes as instances of their own ``numpy.dtypes`` classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [cls for cls in vars(dtypes).values() if isinstance(cls, type)]
    return allowed


def allow_runner_checkpoints():
    """Allow-list, for ``weights_only`` loading, what mmengine Runner checkpoints contain."""
    torch.serialization.add_safe_globals([
        *_numpy_globals(),
        HistoryBuffer,
        (_history_buffer_method, 'builtins.getattr'),
    ])


def load_official_checkpoint(filename, map_location='cpu'):
    """Load a checkpoint that may be an official SLaK file (with an ``argparse.Namespace``).

    Args:
        filename (str): Local path or URL understood by mmengine's ``CheckpointLoader``.
        map_location (str): Passed to ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        return CheckpointLoader.load_checkpoint(filename, map_location=map_location)
