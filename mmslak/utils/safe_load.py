"""Load checkpoints without letting them run code, the same way on every torch from 2.1 to 2.14.

torch >= 2.6 restricts ``torch.load`` to an allow-list (``weights_only=True``), older torch does
not restrict it at all, and widening torch's allow-list for what mmengine Runner checkpoints hold
changes it for the whole process. mmslak therefore reads every checkpoint through
:func:`safe_load`: it hands ``torch.load`` a pickle module of its own (with ``weights_only=False``,
without which torch refuses a ``pickle_module``) whose unpickler resolves only what mmslak's
checkpoints hold (:mod:`mmslak.utils.restricted_unpickler`), on every torch version alike. It also
refuses TorchScript archives (``torch.load`` would hand them to ``torch.jit.load``, which runs
their code) and the tar format of torch < 0.4 (unpacked to disk).

:func:`mmslak.checkpoint.read_checkpoint` reads a named checkpoint with it, saying what is wrong
with a file it cannot load.
"""
import os
import pickle
import tarfile
import zipfile

import torch

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
