"""mmslak.utils.safe_load: checkpoints load on every torch without running code from the file.

The payloads below would create ``marker`` (or call a patched sentinel) if anything called what
they name; each is written as a torch zip file, as torch's legacy format and as a plain pickle.
"""
import argparse
import copyreg
import io
import os
import pathlib
import pickle
import re
import subprocess
import sys
import tarfile
import types
import warnings
import zipfile
from collections import Counter, OrderedDict
from contextlib import ExitStack
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer

from mmslak.checkpoint import read_checkpoint
from mmslak.utils import safe_load
from mmslak.utils.safe_load import LOAD_ERRORS, RefusedPickleError
from ..conftest import OFFICIAL_CKPT

HB = 'mmengine.logging.history_buffer'


class Global:
    """A global named by its module and name, written as ``GLOBAL`` whether it exists or not."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # also makes it pass pickle's callable check in save_reduce
        return Call(self, *args)


class Call(Global):
    """``func(*args)`` at unpickling time (``REDUCE``)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args


class Build:
    """``obj`` with ``state`` set on it at unpickling time (``BUILD``)."""

    def __init__(self, obj, state):
        self.obj, self.state = obj, state


class Raw(Global):
    """Opcodes written as they are; they push one object."""

    def __init__(self, data):
        self.data = data


class PayloadPickler(pickle._Pickler):
    """Python's pickler, writing :class:`Global`, :class:`Call`, :class:`Build` and :class:`Raw`."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_named_global(self, obj):
        self.write(f'c{obj.module}\n{obj.name}\n'.encode())

    def save_call(self, obj):
        self.save_reduce(obj.func, obj.args)

    def save_build(self, obj):
        self.save(obj.obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    def save_raw(self, obj):
        self.write(obj.data)

    dispatch.update({Global: save_named_global, Call: save_call, Build: save_build,
                     Raw: save_raw})


def _dump(obj, file, protocol=2):
    PayloadPickler(file, protocol).dump(obj)


PAYLOAD_PICKLE = types.SimpleNamespace(__name__='payload_pickle', Pickler=PayloadPickler,
                                       dump=_dump)
FORMATS = ('zip', 'legacy', 'raw')


def write_payload(path, payload, fmt):
    """Write ``payload`` to ``path`` in ``fmt`` (see :data:`FORMATS`); return ``path``."""
    if fmt == 'raw':
        with open(path, 'wb') as file:
            _dump(payload, file)
    else:
        torch.save(payload, path, pickle_module=PAYLOAD_PICKLE,
                   _use_new_zipfile_serialization=fmt == 'zip')
    return path


class ReducesTo:
    """An object that pickles as ``func(*args)``, as an attacker's class would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def exploits(tmp_path):
    """Payloads and what the error must name; those holding tensors skip the plain pickle."""
    marker = tmp_path / 'pwned'
    touch = f'touch {marker}'
    write = f'open({str(marker)!r}, "w").close()'
    system = Global('posix', 'system')
    getattr_ = Global('builtins', 'getattr')
    history_buffer = Global(HB, 'HistoryBuffer')
    inner = pickle.dumps(ReducesTo(os.system, touch), protocol=2)
    rebuild_v2 = Global('torch._utils', '_rebuild_tensor_v2')
    return {
        'reduce os.system': (ReducesTo(os.system, touch), 'posix.system'),
        'os.system': (Global('os', 'system')(touch), 'os.system'),
        'nt.system': (Global('nt', 'system')(touch), 'nt.system'),
        'eval': (Global('builtins', 'eval')(write), 'builtins.eval'),
        'exec': (Global('__builtin__', 'exec')(write), 'builtins.exec'),
        '__import__': (getattr_(Global('builtins', '__import__')('os'), 'system')(touch),
                       'builtins.__import__'),
        'getattr __globals__': (getattr_(getattr_(history_buffer, '__init__'), '__globals__'),
                                "getattr(HistoryBuffer, '__init__')"),
        'getattr register_statistics': (
            getattr_(history_buffer, 'register_statistics')(getattr_),
            "getattr(HistoryBuffer, 'register_statistics')"),
        'getattr torch.Tensor': (getattr_(Global('torch', 'Tensor'), 'to'), 'torch.Tensor'),
        'getattr torch.Size': (getattr_(Global('torch', 'Size'), '__subclasses__')(),
                               "getattr(Size, '__subclasses__')"),
        'getattr os': (getattr_(getattr_(Global('os', 'path'), 'os'), 'system')(touch),
                       'os.path'),
        'Popen': (Global('subprocess', 'Popen')(('touch', str(marker))), 'subprocess.Popen'),
        'run': (Global('subprocess', 'run')(('touch', str(marker))), 'subprocess.run'),
        'check_output': (Global('subprocess', 'check_output')(('touch', str(marker))),
                         'subprocess.check_output'),
        'import_module': (getattr_(Global('importlib', 'import_module')('os'), 'system')(touch),
                          'importlib.import_module'),
        'pickle.loads': (Global('pickle', 'loads')(inner), 'pickle.loads'),
        '_pickle.loads': (Global('_pickle', 'loads')(inner), '_pickle.loads'),
        # the test writes inner.pkl, a plain pickle of the os.system call
        'torch.load': (Global('torch', 'load')(str(tmp_path / 'inner.pkl')), 'torch.load'),
        'partial': (Global('functools', 'partial')(system, touch)(), 'functools.partial'),
        'copyreg._reconstructor': (
            Global('copy_reg', '_reconstructor')(Global('subprocess', 'Popen'),
                                                 Global('builtins', 'object'), None),
            'copyreg._reconstructor'),
        'codecs other than latin-1': (Global('_codecs', 'encode')('eA==', 'base64'),
                                      "_codecs.encode(..., 'base64')"),
        'GLOBAL in rebuild args': (rebuild_v2(system(touch), 0, (1, ), (1, ), False,
                                              OrderedDict()), 'posix.system'),
        'Namespace as storage': (
            rebuild_v2(Build(Global('argparse', 'Namespace')(),
                             {'dtype': Global('torch', 'float32')}),
                       0, (1, ), (1, ), False, OrderedDict()), 'a tensor rebuilt from a Namespace'),
        'protocol 0 REDUCE': (Raw(f"cposix\nsystem\n(S'{touch}'\ntR".encode()),
                              'posix.system'),
        'protocol 0 INST': (Raw(f"(S'{touch}'\niposix\nsystem\n".encode()), 'posix.system'),
        'protocol 0 OBJ': (Raw(f"(cposix\nsystem\nS'{touch}'\no".encode()), 'posix.system'),
        'STACK_GLOBAL': (Raw(b'\x8c\x05posix\x8c\x06system\x93')(touch), 'posix.system'),
        'BUILD on a class': (Build(Global('argparse', 'Namespace'),
                                   (None, {'__eq__': getattr_})), 'the state of Namespace'),
        'BUILD on a function': (
            Build(getattr_(history_buffer, 'mean'), (None, {'__defaults__': (1, )})),
            'the state of function'),
        'BUILD HistoryBuffer methods': (
            Build(history_buffer(), {'statistics_methods': {'mean': getattr_}}),
            'HistoryBuffer state'),
        'BUILD slots of an OrderedDict': (
            Build(Global('collections', 'OrderedDict')(),
                  (None, {'__class__': Global('argparse', 'Namespace')})),
            'the state of a OrderedDict of type tuple'),
        'numpy object array': (np.array([system(touch)], dtype=object), 'posix.system'),
        'backward hooks': (Global('torch._utils', '_rebuild_parameter')(
            torch.zeros(2), False, OrderedDict(hook=getattr_)), 'backward hooks', 'tensors'),
        'Parameter private state': (Global('torch._utils', '_rebuild_parameter_with_state')(
            torch.zeros(2), False, OrderedDict(), {'_backward_hooks': {0: getattr_}}),
            "Parameter attributes ['_backward_hooks']", 'tensors'),
    }


# a plain pickle holds no tensor storages: payloads with tensors are torch files only
EXPLOITS = [(name, fmt) for name, entry in sorted(exploits(pathlib.Path('never-written')).items())
            for fmt in FORMATS if fmt != 'raw' or 'tensors' not in entry[2:]]


@pytest.mark.parametrize('name,fmt', EXPLOITS)
def test_exploits_are_refused_and_run_nothing(name, fmt, tmp_path):
    payload, expected, *_ = exploits(tmp_path)[name]
    (tmp_path / 'inner.pkl').write_bytes(
        pickle.dumps(ReducesTo(os.system, f'touch {tmp_path / "pwned"}'), protocol=2))
    path = write_payload(tmp_path / 'evil.pth', dict(state_dict=payload), fmt)
    namespace_eq, mean_defaults = argparse.Namespace.__eq__, HistoryBuffer.mean.__defaults__
    with pytest.raises(RefusedPickleError, match=re.escape(expected)):
        safe_load(path)
    assert not (tmp_path / 'pwned').exists()
    # a refused BUILD changed nothing for the process
    assert argparse.Namespace.__eq__ is namespace_eq
    assert HistoryBuffer.mean.__defaults__ == mean_defaults
    assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.mean


@pytest.fixture
def extension_code():
    """``posix.system`` registered as extension code 241, and in copyreg's cache of codes."""
    copyreg.add_extension('posix', 'system', 241)
    # a plain unpickler caches what it resolved: this one must look again
    assert pickle.loads(b'\x80\x02\x82\xf1.') is os.system
    yield 241
    copyreg.remove_extension('posix', 'system', 241)


@pytest.mark.parametrize('fmt', FORMATS)
def test_extension_codes_go_through_the_allow_list(fmt, extension_code, tmp_path):
    payload = Raw(b'\x82' + bytes([extension_code]))(f'touch {tmp_path / "pwned"}')
    path = write_payload(tmp_path / 'evil.pth', payload, fmt)
    with pytest.raises(RefusedPickleError, match='posix.system'):
        safe_load(path)
    assert not (tmp_path / 'pwned').exists()


def test_torchscript_and_tar_archives_are_refused(tmp_path):
    path = tmp_path / 'scripted.pt'
    torch.save(dict(weight=torch.ones(2)), path)
    with zipfile.ZipFile(path, 'a') as archive:  # what makes torch.load call torch.jit.load
        archive.writestr('scripted/constants.pkl', pickle.dumps(()))
    with pytest.raises(RefusedPickleError, match='TorchScript'):
        safe_load(path)
    with tarfile.open(tmp_path / 'old.tar', 'w') as archive:
        archive.add(path, 'pickle')
    with pytest.raises(RefusedPickleError, match='tar archive'):
        safe_load(tmp_path / 'old.tar')


IMPORT_LEAVES_SAFE_GLOBALS = f"""
import torch
before = list(torch.serialization.get_safe_globals())
import mmslak
from mmslak.checkpoint import read_checkpoint
read_checkpoint({OFFICIAL_CKPT!r})
after = list(torch.serialization.get_safe_globals())
# torch's own modules (torch.distributed.tensor, imported by mmengine) add their classes
added = [entry for entry in after if entry not in before and getattr(
    entry[0] if isinstance(entry, tuple) else entry, '__module__', '').split('.')[0] != 'torch']
removed = [entry for entry in before if entry not in after]
assert not added and not removed, (added, removed)
"""


@pytest.mark.skipif(not hasattr(torch.serialization, 'get_safe_globals'),
                    reason='torch < 2.4 has no get_safe_globals')
def test_import_leaves_torch_safe_globals_alone():
    result = subprocess.run([sys.executable, '-c', IMPORT_LEAVES_SAFE_GLOBALS],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def sample_checkpoint():
    """A small checkpoint of everything the allow-list covers."""
    param = nn.Parameter(torch.randn(2, 3))
    tagged = nn.Parameter(torch.zeros(2), requires_grad=False)
    tagged.lr_mult = 2.0  # a Python attribute: pickled with _rebuild_parameter_with_state
    base = torch.arange(12.).reshape(3, 4)
    return dict(
        state_dict=OrderedDict(weight=param, tagged=tagged, view=base.t()[1:], base=base,
                               mask=torch.ones(3, dtype=torch.bool), count=torch.tensor(7),
                               half=torch.ones(2, dtype=torch.bfloat16)),
        array=np.arange(6, dtype=np.float32).reshape(2, 3), fortran=np.asfortranarray(
            np.eye(3)), text=np.array(['a', 'bc']), scalar=np.float64(1.5), index=np.int64(3),
        size=torch.Size([2, 3]), dtype=torch.float16, device=torch.device('cpu'),
        counter=Counter({1: 2}), tags={'a', 'b'}, frozen=frozenset([1]), z=complex(1, 2),
        data=b'\x00\xff', empty=b'', args=argparse.Namespace(lr=0.1, kernel_size=[51, 5]),
        history=HistoryBuffer([1., 2.], [1, 1]))


def assert_same(loaded, saved):
    if isinstance(saved, torch.Tensor):
        assert type(loaded) is type(saved) and loaded.requires_grad == saved.requires_grad
        assert loaded.dtype == saved.dtype and torch.equal(loaded, saved)
        if isinstance(saved, nn.Parameter):
            assert vars(loaded) == vars(saved)
    elif isinstance(saved, np.ndarray):
        assert loaded.dtype == saved.dtype and loaded.flags.f_contiguous == saved.flags.f_contiguous
        np.testing.assert_array_equal(loaded, saved)
    elif isinstance(saved, HistoryBuffer):
        for mine, theirs in zip(loaded.data, saved.data):
            np.testing.assert_array_equal(mine, theirs)
    elif isinstance(saved, dict):
        assert type(loaded) is type(saved) and list(loaded) == list(saved)
        for key in saved:
            assert_same(loaded[key], saved[key])
    else:
        assert type(loaded) is type(saved) and loaded == saved


@pytest.mark.parametrize('legacy', [False, True])
def test_state_dicts_round_trip(legacy, tmp_path):
    saved = sample_checkpoint()
    torch.save(saved, tmp_path / 'sample.pth', _use_new_zipfile_serialization=not legacy)
    loaded = safe_load(tmp_path / 'sample.pth')
    assert_same(loaded, saved)
    tensors = loaded['state_dict']
    # a view still shares the storage of its base
    assert tensors['view'].untyped_storage().data_ptr() == \
        tensors['base'].untyped_storage().data_ptr()


def test_file_objects_load():
    buffer = io.BytesIO()
    torch.save(dict(weight=torch.ones(2)), buffer)
    buffer.seek(0)
    assert torch.equal(safe_load(buffer)['weight'], torch.ones(2))


def test_runner_checkpoint_loads_with_its_history(tmp_path):
    from ..test_package import toy_runner
    toy_runner(tmp_path, max_epochs=1).train()
    checkpoint = safe_load(tmp_path / 'epoch_1.pth')
    history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer) and len(history.data[0]) == 4
    assert history.statistics('mean') == pytest.approx(np.mean(history.data[0]))
    assert checkpoint['param_schedulers'][0]['milestones'] == Counter({1: 1})


def test_official_file_loads_with_its_namespace():
    checkpoint = read_checkpoint(OFFICIAL_CKPT)
    assert isinstance(checkpoint['args'], argparse.Namespace)
    reference = torch.load(OFFICIAL_CKPT, map_location='cpu', weights_only=False)
    assert vars(checkpoint['args']) == vars(reference['args'])
    assert_same(checkpoint['model'], reference['model'])


def test_urls_download_once_then_load_safely(tmp_path, monkeypatch):
    downloads = []

    def download(url, path, *args, **kwargs):
        downloads.append(url)
        with open(path, 'wb') as file:
            file.write(open(OFFICIAL_CKPT, 'rb').read())

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    url = 'https://example.com/weights/slak_tiny.pth?download=1'
    for _ in range(2):
        assert 'model' in read_checkpoint(url)
    assert downloads == [url]
    assert (tmp_path / 'hub' / 'checkpoints' / 'slak_tiny.pth').is_file()


def test_other_backends_are_read_into_memory(tmp_path, monkeypatch):
    evil = write_payload(tmp_path / 'evil.pth', ReducesTo(os.system, 'true'), 'zip')
    files = {'s3://bucket/ok.pth': open(OFFICIAL_CKPT, 'rb').read(),
             's3://bucket/evil.pth': evil.read_bytes()}
    monkeypatch.setattr('mmengine.fileio.get', lambda name, *args, **kwargs: files[name])
    assert 'model' in read_checkpoint('s3://bucket/ok.pth')
    with pytest.raises(ValueError, match='s3://bucket/evil.pth was refused .*posix.system'):
        read_checkpoint('s3://bucket/evil.pth')


def numpy_checkpoints():
    """torch zip files of numpy values, naming numpy 1's and numpy 2's module path."""
    values = [np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(2.5), np.int64(7),
              np.array([True, False]), np.array(['a', 'bc']), np.asfortranarray(np.eye(2))]
    buffer = io.BytesIO()
    torch.save(values, buffer)
    data = data_pkl(buffer.getvalue())
    numpy1, numpy2 = b'cnumpy.core.multiarray\n', b'cnumpy._core.multiarray\n'
    here, other = (numpy2, numpy1) if numpy2 in data else (numpy1, numpy2)
    # protocol 2 has no frames: a GLOBAL line can change length
    return values, {path: zip_with_data_pkl(buffer.getvalue(), data.replace(here, path))
                    for path in (here, other)}


def test_numpy_1_and_2_paths_load_alike():
    values, checkpoints = numpy_checkpoints()
    for path, archive in checkpoints.items():
        data = data_pkl(archive)
        assert path in data and data.count(b'multiarray') == data.count(path)
        with warnings.catch_warnings():
            warnings.simplefilter('error', DeprecationWarning)
            loaded = safe_load(io.BytesIO(archive))
        for mine, theirs in zip(loaded, values):
            assert type(mine) is type(theirs) and mine.dtype == theirs.dtype
            np.testing.assert_array_equal(mine, theirs)


# --- fuzzing -----------------------------------------------------------------------------------

BUILTINS = sys.modules['builtins']
REAL_EXEC = BUILTINS.exec


def sentinel(name, calls):
    """A stand-in of ``name`` that records its calls in ``calls`` and runs nothing."""

    def record(*args, **kwargs):
        calls.append(name)

    def exec_code_objects(source, *args, **kwargs):
        # importlib runs the code of every module it imports through builtins.exec
        if isinstance(source, (str, bytes)):
            return calls.append(name)
        return REAL_EXEC(source, *args, **kwargs)

    return exec_code_objects if name == 'exec' else record


SENTINELS = [(os, 'system'), (os, 'popen'), (os, 'execv'), (subprocess, 'Popen'),
             (BUILTINS, 'eval'), (BUILTINS, 'exec')]
if hasattr(os, 'posix_spawn'):
    SENTINELS.append((os, 'posix_spawn'))


def load_guarded(data, calls):
    """``safe_load`` of ``data`` with the sentinels recording calls into ``calls``.

    Returns:
        Exception | None: What it raised, one of the errors that safe_load documents.
    """
    with ExitStack() as stack:
        for owner, name in SENTINELS:
            stack.enter_context(mock.patch.object(owner, name, sentinel(name, calls)))
        try:
            safe_load(io.BytesIO(data))
        except LOAD_ERRORS as error:
            return error
    return None


def zip_with_data_pkl(template, data):
    """The torch zip ``template`` with its ``data.pkl`` replaced by ``data``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as src, zipfile.ZipFile(out, 'w') as dst:
        for info in src.infolist():
            dst.writestr(info.filename, data if info.filename.endswith('/data.pkl')
                         else src.read(info))
    return out.getvalue()


def templates():
    """A small checkpoint as a torch zip file and in torch's legacy format, and a plain pickle."""
    saved = sample_checkpoint()
    checkpoint = dict(state_dict=saved['state_dict'], meta=dict(history=saved['history']))
    files = []
    for zipped in (True, False):
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer, _use_new_zipfile_serialization=zipped)
        files.append(buffer.getvalue())
    plain = {key: value for key, value in saved.items() if key != 'state_dict'}
    return (*files, pickle.dumps(plain, protocol=2))


def data_pkl(archive):
    with zipfile.ZipFile(io.BytesIO(archive)) as src:
        return src.read(next(name for name in src.namelist() if name.endswith('/data.pkl')))


def mutate(data, edits):
    data = bytearray(data)
    for kind, position, value in edits:
        position %= len(data) + 1
        if kind == 'replace' and position < len(data):
            data[position] = value
        elif kind == 'insert':
            data.insert(position, value)
        else:
            del data[position:position + 1 + value % 8]
    return bytes(data)


DANGEROUS = [('posix', 'system'), ('os', 'system'), ('builtins', 'eval'), ('builtins', 'exec'),
             ('subprocess', 'Popen'), ('builtins', '__import__'), ('pickle', 'loads'),
             ('importlib', 'import_module'), ('functools', 'partial'), ('os', 'popen'),
             ('copyreg', '_reconstructor'), ('torch', 'load'), ('numpy', 'load')]
ALLOWED = [('collections', 'OrderedDict'), ('collections', 'Counter'), ('torch', 'Size'),
           ('torch', 'device'), ('builtins', 'set'), ('builtins', 'getattr'),
           ('argparse', 'Namespace'), (HB, 'HistoryBuffer'), ('numpy', 'dtype'),
           ('numpy.core.multiarray', 'scalar'), ('torch._utils', '_rebuild_tensor_v2'),
           ('_codecs', 'encode'), ('__builtin__', 'bytes')]


def globals_stream(steps, command):
    """A pickle of GLOBALs, each pushed as it is or called with ``command`` or the last value."""
    out = [b'\x80\x02]']  # PROTO 2, EMPTY_LIST
    for (module, name), how in steps:
        out.append(f'c{module}\n{name}\n'.encode())
        if how == 'call':
            out.append(pickle.dumps(command, protocol=2)[2:-1] + b'\x85R')  # TUPLE1, REDUCE
        elif how == 'call_empty':
            out.append(b')R')
        out.append(b'a')  # APPEND
    return b''.join(out) + b'.'


hypothesis = pytest.importorskip('hypothesis')
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)
EDITS = st.lists(st.tuples(st.sampled_from(['replace', 'insert', 'delete']),
                           st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6)


@pytest.mark.parametrize('kind', ['zip', 'legacy', 'plain'])
def test_fuzz_mutated_checkpoints_only_load_or_fail(kind, tmp_path):
    archive, legacy, plain = templates()
    template = {'zip': data_pkl(archive), 'legacy': legacy, 'plain': plain}[kind]
    wrap = (lambda data: zip_with_data_pkl(archive, data)) if kind == 'zip' else bytes

    marker = tmp_path / 'pwned'

    @FUZZ
    @given(EDITS)
    def check(edits):
        calls = []
        load_guarded(wrap(mutate(template, edits)), calls)
        assert calls == [] and not marker.exists()

    check()


@pytest.mark.parametrize('kind', ['zip', 'plain'])
def test_fuzz_dangerous_globals_are_refused(kind, tmp_path):
    archive = templates()[0]
    marker = tmp_path / 'pwned'
    step = st.tuples(st.sampled_from(DANGEROUS + ALLOWED),
                     st.sampled_from(['push', 'call', 'call_empty']))

    @FUZZ
    @given(st.lists(step, min_size=1, max_size=6))
    def check(steps):
        data = globals_stream(steps, f'touch {marker}')
        calls = []
        error = load_guarded(zip_with_data_pkl(archive, data) if kind == 'zip' else data, calls)
        assert calls == [] and not marker.exists()
        first = next((i for i, (name, _) in enumerate(steps) if name in DANGEROUS), None)
        if first is not None:
            # an allowed global called with odd arguments may fail first
            called_before = any(how != 'push' for _, how in steps[:first])
            assert isinstance(error, pickle.UnpicklingError if called_before
                              else RefusedPickleError), error

    check()
