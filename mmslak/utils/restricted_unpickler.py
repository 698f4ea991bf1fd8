"""The unpickler of :func:`~mmslak.utils.safe_load.safe_load`: what a checkpoint may hold.

A pickle names the callables that rebuild its objects, and unpickling calls them: a file can name
``os.system``. :class:`RestrictedUnpickler` resolves only what mmslak's checkpoints hold, the
same on every torch version:

* torch's rebuilders of plain tensors and ``Parameter`` s (checked stand-ins: a storage must be a
  storage, backward hooks empty), ``torch.Size``, ``torch.device`` and the dtypes;
* ``collections.OrderedDict`` (state dicts) and ``Counter`` (mmengine's ``MultiStepLR``
  milestones), ``set``, ``frozenset``, ``complex``, and bytes as pickle protocol 2 writes them
  (``_codecs.encode`` of latin-1 text, ``bytes()``);
* numpy arrays, scalars and dtypes, under numpy 1's (``numpy.core``) and numpy 2's
  (``numpy._core``) module paths alike, so a file of either loads under both. The items of an
  object-dtype array are objects of the same pickle, refused or allowed like any other;
* mmengine's message hub ``HistoryBuffer``, which pickles its statistics methods as
  ``getattr(HistoryBuffer, 'min')``: ``builtins.getattr`` resolves to a stand-in that resolves
  these four methods only;
* ``argparse.Namespace``: official SLaK files carry the training arguments.

The unpickler also refuses to set the state (``BUILD``) of anything but instances of these
classes, as a file could otherwise set attributes of a class or a function for the whole
process.
"""
import argparse
import copyreg
import pickle
import types
from collections import Counter, OrderedDict

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

HISTORY_BUFFER_STATISTICS = ('current', 'max', 'mean', 'min')
# Python 2 names, which pickle protocols 0-2 write for the builtins
PYTHON2_MODULES = {'__builtin__': 'builtins', 'copy_reg': 'copyreg'}


class RefusedPickleError(pickle.UnpicklingError):
    """A checkpoint asks for a global or a state that mmslak does not unpickle.

    Args:
        what (str): What was refused, e.g. ``'posix.system'``.
        reason (str): Why. Defaults to not being in the allow-list.

    Attributes:
        what (str): What was refused.
    """

    def __init__(self, what, reason="it is not in mmslak's allow-list of checkpoint contents"):
        super().__init__(f'mmslak refuses to unpickle {what}: {reason}')
        self.what = what


def _history_buffer_method(owner, name):
    """The stand-in of ``getattr``: a ``HistoryBuffer`` statistics method, nothing else.

    Args:
        owner (object): The object the pickle takes an attribute of.
        name (str): The attribute.

    Returns:
        function: ``HistoryBuffer.<name>``.

    Raises:
        RefusedPickleError: For any other object or attribute.
    """
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, '__qualname__', type(owner).__qualname__)
    raise RefusedPickleError(
        f'getattr({owner_name}, {name!r})',
        'mmslak allows getattr only for the HistoryBuffer statistics methods '
        f'{", ".join(HISTORY_BUFFER_STATISTICS)}')


def _latin1_bytes(text, encoding):
    """The stand-in of ``_codecs.encode``, which pickle protocol 2 writes for bytes.

    Args:
        text (str): The bytes as latin-1 text.
        encoding (str): ``'latin1'``, as pickle writes it.

    Returns:
        bytes: ``text`` encoded.

    Raises:
        RefusedPickleError: For other text or another codec.
    """
    if type(text) is not str or encoding not in ('latin1', 'latin-1'):
        raise RefusedPickleError(f'_codecs.encode(..., {encoding!r})',
                                 'only latin-1 text, as pickle writes bytes, is decoded')
    return text.encode('latin1')


def _empty_bytes():
    """The stand-in of ``bytes``, which pickle protocol 2 writes for ``b''`` only."""
    return b''


def _check_storage(storage):
    """Refuse a tensor rebuilt from anything but a storage of the file.

    Raises:
        RefusedPickleError: If ``storage`` is no ``TypedStorage``.
    """
    if not isinstance(storage, torch.storage.TypedStorage):
        raise RefusedPickleError(f'a tensor rebuilt from a {type(storage).__qualname__}',
                                 'tensors are rebuilt from the storages of the file only')


def _check_hooks(backward_hooks):
    """Refuse backward hooks: ``torch.save`` writes an empty dict, and hooks would be called.

    Raises:
        RefusedPickleError: If ``backward_hooks`` is no empty dict.
    """
    if not isinstance(backward_hooks, dict) or backward_hooks:
        raise RefusedPickleError('a tensor with backward hooks',
                                 'torch.save writes none, and they would be called')


def _rebuild_tensor(storage, storage_offset, size, stride):
    """``torch._utils._rebuild_tensor`` of a storage only (arguments as there)."""
    _check_storage(storage)
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    """``torch._utils._rebuild_tensor_v2`` of a storage, without hooks (arguments as there)."""
    _check_storage(storage)
    _check_hooks(backward_hooks)
    if metadata is not None and not isinstance(metadata, dict):
        raise RefusedPickleError(f'tensor metadata of type {type(metadata).__qualname__}',
                                 'torch.save writes a dict')
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                                           backward_hooks, metadata)


def _check_parameter(data, backward_hooks):
    """Refuse a ``Parameter`` of anything but a tensor, or with backward hooks."""
    if not isinstance(data, torch.Tensor):
        raise RefusedPickleError(f'a Parameter of a {type(data).__qualname__}',
                                 'Parameters hold tensors only')
    _check_hooks(backward_hooks)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter`` of a tensor, without hooks (arguments as there)."""
    _check_parameter(data, backward_hooks)
    return torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    """``torch._utils._rebuild_parameter_with_state`` with public attributes only.

    Args:
        data (torch.Tensor): The data. ``requires_grad`` and ``backward_hooks`` as in
            ``_rebuild_parameter``.
        state (dict | tuple | None): The Parameter's Python attributes (and slots): torch sets
            them with ``setattr``, so names such as ``_backward_hooks`` are refused.
    """
    _check_parameter(data, backward_hooks)
    for part in state if isinstance(state, tuple) else (state, ):
        _check_attributes('Parameter', {} if part is None else part, private=False)
    return torch._utils._rebuild_parameter_with_state(data, requires_grad, backward_hooks, state)


def _check_attributes(owner, state, private=True):
    """Refuse an instance state that is not a dict of attribute names.

    Args:
        owner (str): The class, for the message.
        state (object): The state.
        private (bool): Allow names that start with one underscore. Defaults to True.

    Raises:
        RefusedPickleError: If ``state`` is no dict, or names special (or private) attributes.
    """
    prefix = '__' if private else '_'
    if type(state) is not dict or not all(
            type(key) is str and not key.startswith(prefix) for key in state):
        raise RefusedPickleError(
            f'the state of a {owner} of type {type(state).__qualname__}'
            if type(state) is not dict else
            f'the {owner} attributes {sorted(map(str, state))[:8]}',
            f'only a dict of attribute names not starting with {prefix!r} is set')


def _check_history_buffer_state(state):
    """Refuse a ``HistoryBuffer`` state other than its history and its statistics methods.

    Its ``__setstate__`` adds the statistics methods to the class, for the whole process.
    """
    _check_attributes('HistoryBuffer', state)
    unknown = set(state) - {'_log_history', '_count_history', 'max_length', 'statistics_methods'}
    methods = state.get('statistics_methods', {})
    if unknown or type(methods) is not dict or not all(
            name in HISTORY_BUFFER_STATISTICS and method is getattr(HistoryBuffer, name)
            for name, method in methods.items()):
        raise RefusedPickleError('a HistoryBuffer state with other entries or statistics '
                                 'methods', 'it would change HistoryBuffer for the whole process')


def _check_state(inst, state):
    """Refuse a ``BUILD`` (setting the state of ``inst``) that checkpoints do not hold.

    Args:
        inst (object): The object whose state the pickle sets.
        state (object): The state.

    Raises:
        RefusedPickleError: Unless ``inst`` is a numpy array or dtype (whose ``__setstate__``
            checks its state), a ``HistoryBuffer`` or an ``OrderedDict`` or ``Namespace`` given
            attribute names.
    """
    if type(inst) is np.ndarray or isinstance(inst, np.dtype):
        return
    if type(inst) is HistoryBuffer:
        _check_history_buffer_state(state)
    elif type(inst) in (OrderedDict, argparse.Namespace):
        _check_attributes(type(inst).__name__, state)
    else:
        kind = inst.__qualname__ if isinstance(inst, type) else type(inst).__qualname__
        raise RefusedPickleError(f'the state of {kind}', 'it sets the state of instances of '
                                 'the allowed classes only (a class or a function would change '
                                 'for the whole process)')


def _numpy_globals():
    """numpy's reconstructors of arrays, scalars and dtypes, under numpy 1's and 2's paths."""
    try:
        # numpy 2, and numpy 1.26's stub of it: no DeprecationWarning, unlike numpy.core on 2
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    allowed = {(module, name): getattr(multiarray, name)
               for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
               for name in ('_reconstruct', 'scalar')}
    allowed.update({('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype})
    # numpy >= 1.25 has a class per dtype in numpy.dtypes
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed.update((('numpy.dtypes', name), cls) for name, cls in vars(dtypes).items()
                       if isinstance(cls, type) and issubclass(cls, np.dtype))
    return allowed


def _torch_globals():
    """torch's tensor rebuilders (as checked stand-ins), ``Size``, ``device`` and the dtypes."""
    allowed = {('torch._utils', function.__name__): function for function in (
        _rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter, _rebuild_parameter_with_state)}
    allowed.update({('torch', 'Size'): torch.Size, ('torch', 'device'): torch.device})
    # read from torch's namespace up front: a name from the file is never looked up on a module
    allowed.update((('torch', name), value) for name, value in vars(torch).items()
                   if isinstance(value, torch.dtype))
    return allowed


def _allowed_globals():
    """Everything :class:`RestrictedUnpickler` resolves (see the module docstring).

    Returns:
        dict: ``(module, name)`` as a pickle names it to the object it gets.
    """
    allowed = {
        ('builtins', 'set'): set, ('builtins', 'frozenset'): frozenset,
        ('builtins', 'complex'): complex, ('builtins', 'bytes'): _empty_bytes,
        ('builtins', 'getattr'): _history_buffer_method, ('_codecs', 'encode'): _latin1_bytes,
        ('collections', 'OrderedDict'): OrderedDict, ('collections', 'Counter'): Counter,
        ('argparse', 'Namespace'): argparse.Namespace,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'): HistoryBuffer,
    }
    allowed.update(_numpy_globals())
    allowed.update(_torch_globals())
    return allowed


# Built (and numpy's modules imported) here, at import: unpickling imports nothing. Read-only.
ALLOWED_GLOBALS = types.MappingProxyType(_allowed_globals())


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` and sets only their states.

    Python's own unpickler (``pickle._Unpickler``), since the C one offers no hook for ``BUILD``;
    a checkpoint's pickle holds no tensor data (torch stores it beside), so it is small. Any other
    failure of a malformed pickle is raised as ``pickle.UnpicklingError``.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        """The allowed object ``module.name``.

        Args:
            module (str): Its module, as the pickle names it.
            name (str): Its name.

        Returns:
            object: The object (or its checked stand-in).

        Raises:
            RefusedPickleError: If it is not allowed; nothing is imported.
        """
        module = PYTHON2_MODULES.get(module, module)
        try:
            return ALLOWED_GLOBALS[module, name]
        except KeyError:
            raise RefusedPickleError(f'{module}.{name}') from None

    def get_extension(self, code):
        """Resolve an ``EXT`` code through :meth:`find_class`, bypassing copyreg's cache.

        Args:
            code (int): The code registered with ``copyreg.add_extension``.
        """
        key = copyreg._inverted_registry.get(code)
        if key is None:
            raise pickle.UnpicklingError(f'unregistered extension code {code}')
        self.append(self.find_class(*key))

    def load_build(self):
        """``BUILD``, once :func:`_check_state` allowed it."""
        _check_state(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build

    def load(self):
        """Unpickle the file.

        Returns:
            object: The object.

        Raises:
            pickle.UnpicklingError: If it is refused or malformed.
            EOFError: If it ends early.
        """
        try:
            return super().load()
        except (pickle.UnpicklingError, EOFError):
            raise
        except Exception as error:
            raise pickle.UnpicklingError(
                f'malformed pickle ({type(error).__name__}: {error})') from error


def _restricted_load(file, **kwargs):
    """``pickle.load`` with :class:`RestrictedUnpickler`: torch's legacy format calls it."""
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load uses of its pickle_module: Unpickler (subclassed), load, and __name__
RESTRICTED_PICKLE = types.ModuleType('mmslak.utils.restricted_unpickler.RESTRICTED_PICKLE',
                                     'The pickle module that safe_load hands torch.load.')
RESTRICTED_PICKLE.Unpickler = RestrictedUnpickler
RESTRICTED_PICKLE.load = _restricted_load
RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError
