"""Reading a named checkpoint: the first step of the pipeline, and its errors.

:func:`read_checkpoint` is where every mmslak reader learns what is wrong with a file it cannot
load: missing, empty, truncated, not a checkpoint, refused as unsafe, or without tensors. The file
itself is unpickled by :func:`mmslak.utils.safe_load`, which runs no code of it.
"""
import io
import os
import os.path as osp
import urllib.parse

import torch
from mmengine.dist import barrier, get_dist_info

from mmslak.utils.restricted_unpickler import RefusedPickleError
from mmslak.utils.safe_load import PICKLE_PROTOCOL, ZIP_MAGIC, safe_load


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


def _download_once(url, path):
    """Download ``url`` to ``path`` unless a file is there."""
    if not osp.isfile(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        # written to a temporary file first, then moved: no half-downloaded file at ``path``
        torch.hub.download_url_to_file(url, path)


def _download_checkpoint(url):
    """Download ``url`` into torch.hub's checkpoint folder, unless it is there already.

    The first process downloads, the others wait for it (as mmengine does), then fetch it
    themselves where they do not share the folder.

    Args:
        url (str): An ``http://`` or ``https://`` URL of a file.

    Returns:
        str: The local path, ``torch.hub.get_dir()/checkpoints/<file name>``.

    Raises:
        ValueError: If the URL names no file.
    """
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise ValueError(f'{url} names no file to download')
    path = osp.join(torch.hub.get_dir(), 'checkpoints', name)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download_once(url, path)
    if world_size > 1:
        barrier()
        _download_once(url, path)
    return path


def _fetch(filename):
    """A local path, or a file object, to read the checkpoint ``filename`` (a URL) from."""
    if filename.startswith(('http://', 'https://')):
        return _download_checkpoint(filename)
    from mmengine.fileio import get  # the storage backends of mmengine (petrel, ...)
    return io.BytesIO(get(filename))


def _first_bytes(filename, count=16):
    """The first ``count`` bytes of the file ``filename``."""
    with open(filename, 'rb') as file:
        return file.read(count)


def _load_error(filename, error, path):
    """The error to raise, naming ``filename``, when :func:`safe_load` failed on it with ``error``.

    What the file looks like (its first bytes) tells a truncated archive from a file that is no
    checkpoint at all; a refused global means the pickle holds objects that could run code.

    Args:
        filename (str): The checkpoint, as the user named it.
        error (Exception): What loading raised.
        path (str | None): The local file it was read from, if any.

    Returns:
        Exception: A ``ValueError`` or ``FileNotFoundError`` saying what is wrong.
    """
    cause = f'{type(error).__name__}: ' + str(error).split('. ')[0]
    if isinstance(error, RefusedPickleError):
        return ValueError(
            f"Checkpoint {filename} was refused by mmslak's safe loader: it pickles "
            f'{error.what}, which is not unpickled because it could run code. Only if you '
            'trust the file: load it with torch.load(..., weights_only=False) and save its '
            'tensors alone, torch.save(dict(state_dict=...), path)')
    if isinstance(error, FileNotFoundError):
        return FileNotFoundError(f'Checkpoint not found: {filename} ({cause})')
    if path is None or not osp.isfile(path):
        return ValueError(f'Checkpoint {filename} could not be loaded ({cause})')
    head = _first_bytes(path)
    size = f'{osp.getsize(path)} bytes' + ('' if path == filename else f', downloaded to {path}')
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


def read_checkpoint(filename, map_location='cpu'):
    """Read a checkpoint (an mmslak, mmengine Runner or official SLaK file) with ``safe_load``.

    Args:
        filename (str | os.PathLike): A local path; an ``http(s)://`` URL, downloaded once into
            torch.hub's checkpoint folder; or a URL of another mmengine storage backend.
        map_location (str | torch.device | dict | Callable): Where to put the tensors, as for
            ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: Naming the file and what it looks like, if it is empty, truncated, not a
            checkpoint, refused as unsafe to unpickle, or holds no tensor.
    """
    filename = str(filename)
    local = '://' not in filename
    if local:
        _check_local_file(filename)
    source = None  # the local file read: the checkpoint or its download
    try:
        source = filename if local else _fetch(filename)
        checkpoint = safe_load(source, map_location=map_location)
    except Exception as error:
        raise _load_error(filename, error, source if isinstance(source, str) else None) from error
    if not _holds_tensors(checkpoint):
        found = (f'a dict with keys {sorted(map(str, checkpoint))[:8]}'
                 if isinstance(checkpoint, dict) else f'a {type(checkpoint).__name__}')
        raise ValueError(f'{filename} holds no tensors ({found}): it is not a checkpoint of '
                         'weights')
    return checkpoint
