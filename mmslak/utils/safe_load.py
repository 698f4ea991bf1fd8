"""Load checkpoints without letting them run code, the same way on every torch from 2.1 to 2.14.

torch >= 2.6 restricts ``torch.load`` to an allow-list (``weights_only=True``), older torch does
not restrict it at all, and widening torch's allow-list for what mmengine Runner checkpoints hold
changes it for the whole process. mmslak therefore reads every checkpoint through
:func:`safe_load`: it hands ``torch.load`` a pickle module of its own (with ``weights_only=False``,
without which torch refuses a ``pickle_module``) whose unpickler resolves only what mmslak's
checkpoints hold (:mod:`mmslak.utils.restricted_unpickler`), on every torch version alike. It also
refuses TorchScript archives (``torch.load`` would hand them to ``torch.jit.load``, which runs
their code) and the tar format of torch < 0.4 (unpacked to disk).

:func:`load_official_checkpoint` is where every mmslak reader learns what is wrong with a file
it cannot load: missing, empty, truncated, not a checkpoint, refused as unsafe, or without tensors.
"""
import io
import os
import os.path as osp
import pickle
import tarfile
import urllib.parse
import zipfile

import torch
from mmengine.dist import barrier, get_dist_info

from .restricted_unpickler import RESTRICTED_PICKLE, RefusedPickleError

# What :func:`safe_load` raises for a file it cannot or will not load; anything else that torch
# raises on a malformed file comes as a ``pickle.UnpicklingError`` naming it.
LOAD_ERRORS = (OSError, EOFError, RuntimeError, pickle.UnpicklingError)


ZIP_MAGIC = b'PK\x03\x04'  # torch.save's format since torch 1.6
PICKLE_PROTOCOL = b'\x80'  # the first byte of a pickle: older torch.save files, plain pickles


def _zip_names(file):
    """The record names of the zip archive ``file``, read by Python's ``zipfile``."""
    try:
        with zipfile.ZipFile(file) as archive:
            return archive.namelist()
    except zipfile.BadZipFile as error:
        raise RuntimeError(f'not a readable zip archive ({error})') from error


def _is_tar(file):
    """Whether ``file`` opens as an uncompressed tar archive, as torch's legacy loader tries."""
    try:
        tarfile.open(fileobj=file, mode='r:').close()
    except tarfile.TarError:
        return False
    return True


def _refuse_code_archives(file):
    """Refuse the formats that ``torch.load`` would not unpickle with our pickle module.

    Args:
        file (BinaryIO): The open checkpoint, seekable; left where it was.

    Raises:
        RefusedPickleError: For a TorchScript archive or the tar format.
        RuntimeError: For a zip archive that Python cannot read.
    """
    start = file.tell()
    try:
        if file.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
            file.seek(start)
            # torch.load passes an archive with a constants.pkl to torch.jit.load
            if any(name.rsplit('/', 1)[-1] == 'constants.pkl' for name in _zip_names(file)):
                raise RefusedPickleError('TorchScript code (a torch.jit archive)',
                                         'torch.jit.load would run it')
        else:
            file.seek(start)
            # torch.load unpacks this format (torch < 0.4) to disk before unpickling
            if _is_tar(file):
                raise RefusedPickleError('a tar archive (the format of torch < 0.4)',
                                         'mmslak reads the formats of torch >= 0.4 only')
    finally:
        file.seek(start)


def _load_file(file, map_location):
    """:func:`safe_load` of an open, seekable file."""
    _refuse_code_archives(file)
    try:
        return torch.load(file, map_location=map_location, pickle_module=RESTRICTED_PICKLE,
                          weights_only=False)
    except LOAD_ERRORS:
        raise
    except Exception as error:  # torch's own code, on what a malformed pickle gave it
        raise pickle.UnpicklingError(
            f'not a checkpoint mmslak can read ({type(error).__name__}: {error})') from error


def safe_load(file, map_location='cpu'):
    """Load a checkpoint, unpickling only what mmslak's checkpoints hold (module docstring).

    Args:
        file (str | os.PathLike | BinaryIO): Path, or a seekable binary file object.
        map_location (str | torch.device | dict | Callable): Where to put the tensors, as for
            ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        object: The checkpoint.

    Raises:
        RefusedPickleError: If the file asks for anything outside the allow-list (a
            ``pickle.UnpicklingError``): nothing it names is imported or called.
        pickle.UnpicklingError: If the pickle is malformed.
        OSError: If the file cannot be read.
        EOFError: If the pickle ends early.
        RuntimeError: If torch cannot read the archive or the file is no torch checkpoint.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, 'rb') as opened:
            return _load_file(opened, map_location)
    return _load_file(file, map_location)


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


def load_official_checkpoint(filename, map_location='cpu'):
    """Load a checkpoint (an mmslak, mmengine Runner or official SLaK file) with :func:`safe_load`.

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
