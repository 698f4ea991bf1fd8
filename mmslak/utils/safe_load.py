"""The one place that widens ``torch.load(weights_only=True)``, as narrowly as each file needs.

Since torch 2.6, ``torch.load`` unpickles only allow-listed globals. Two kinds of files need more:

* checkpoints written by mmengine's ``Runner`` hold numpy arrays and scalars and the message
  hub's ``HistoryBuffer``, which pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``. :func:`allow_runner_checkpoints` (called by
  ``import mmslak``) allow-lists exactly these, and binds ``builtins.getattr`` to a stand-in that
  resolves nothing but those statistics methods;
* official SLaK files carry the training ``argparse.Namespace``: :func:`load_official_checkpoint`
  allows it for the duration of that one load only.

:func:`load_official_checkpoint` is also where every mmslak reader learns what is wrong with a file
it cannot load: missing, empty, truncated, not a checkpoint, refused as unsafe, or without tensors.
"""
import argparse
import os.path as osp
import pickle
import re

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


ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6
PICKLE_PROTOCOL = b'\x80'  # the first byte of a pickle: older torch.save files, plain pickles


def _check_local_file(filename):
    """Refuse a local checkpoint that is missing, a folder or empty, naming it.

    Raises:
        FileNotFoundError: If ``filename`` is not an existing file.
        ValueError: If it is empty.
    """
    if not osp.exists(filename):
        raise FileNotFoundError(f'Checkpoint not found: {filename}')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint {filename} is a folder, not a file')
    if osp.getsize(filename) == 0:
        raise ValueError(f'Checkpoint {filename} is empty (0 bytes): its saving or download did '
                         'not finish; save or download it again')


def _first_bytes(filename, count=16):
    with open(filename, 'rb') as file:
        return file.read(count)


def _load_error(filename, error, local):
    """The error to raise, naming ``filename``, when ``torch.load`` failed on it with ``error``.

    What the file looks like (its first bytes) tells a truncated archive from a file that is no
    checkpoint at all; a refused global means the pickle holds objects that could run code.
    """
    # torch's weights-only messages open with a paragraph on its defaults; the reason comes last
    reason = re.search(r'WeightsUnpickler error:\s*(.+)', str(error))
    cause = f'{type(error).__name__}: ' + (
        reason.group(1) if reason else str(error).split('. ')[0])
    refused = re.search(r'GLOBAL ([\w.]+)', str(error))
    if isinstance(error, pickle.UnpicklingError) and refused:
        return ValueError(
            f'Checkpoint {filename} was refused by torch.load(weights_only=True): it pickles '
            f'{refused.group(1)}, which is not unpickled because it could run code. Only if you '
            'trust the file: load it with torch.load(..., weights_only=False) and save its '
            'tensors alone, torch.save(dict(state_dict=...), path)')
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f'Checkpoint not found: {filename} ({cause})')
    if not local:
        return ValueError(f'Checkpoint {filename} could not be loaded ({cause})')
    head = _first_bytes(filename)
    size = f'{osp.getsize(filename)} bytes'
    if head.startswith(ZIP_MAGIC):
        return ValueError(f'Checkpoint {filename} ({size}) is a truncated or corrupt PyTorch zip '
                          f'archive ({cause}); save or download it again')
    if head.startswith(PICKLE_PROTOCOL):
        return ValueError(f'Checkpoint {filename} ({size}) is a truncated, corrupt or non-PyTorch '
                          f'pickle ({cause})')
    return ValueError(f'{filename} is not a PyTorch checkpoint: it starts with {head!r} ({size}); '
                      'was another file (a config, a log, an HTML error page) saved under this '
                      'name?')


def _holds_tensors(value, depth=4):
    """Whether ``value`` is a tensor or holds one in its dicts, lists and tuples."""
    if torch.is_tensor(value):
        return True
    if depth and isinstance(value, dict):
        value = list(value.values())
    return bool(depth) and isinstance(value, (list, tuple)) and any(
        _holds_tensors(item, depth - 1) for item in value)


def load_official_checkpoint(filename, map_location='cpu'):
    """Load a checkpoint that may be an official SLaK file (with an ``argparse.Namespace``).

    Args:
        filename (str): Local path or URL understood by mmengine's ``CheckpointLoader``.
        map_location (str): Passed to ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: If the local file does not exist.
        ValueError: Naming the file and what it looks like, if it is empty, truncated, not a
            checkpoint, refused as unsafe to unpickle, or holds no tensor.
    """
    local = '://' not in str(filename)
    if local:
        _check_local_file(filename)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = CheckpointLoader.load_checkpoint(filename, map_location=map_location)
    except Exception as error:
        raise _load_error(filename, error, local) from error
    if not _holds_tensors(checkpoint):
        found = (f'a dict with keys {sorted(map(str, checkpoint))[:8]}'
                 if isinstance(checkpoint, dict) else f'a {type(checkpoint).__name__}')
        raise ValueError(f'{filename} holds no tensors ({found}): it is not a checkpoint of '
                         'weights')
    return checkpoint
