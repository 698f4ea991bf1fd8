"""mmslak.checkpoint: tensor checks, and errors that name a file the pipeline cannot read."""
import os
import re

import pytest
import torch

from mmslak.checkpoint import (check_dtypes, check_finite, load_weights, non_finite_tensors,
                               read_checkpoint)
from mmslak.models import SLaK
from mmslak.registry import MODELS
from mmslak.utils import short_list
from ..test_tools.conftest import load_tool

TINY = dict(arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64]), kernel_size=[13, 11, 9, 7, 3])


class RunsCode:
    """A pickle that would call ``os.system`` when loaded by an unrestricted unpickler."""

    def __reduce__(self):
        return os.system, ('echo unsafe',)


def write_bad_file(path, kind):
    """Write a file of ``kind`` that no reader may load; return its path as a string."""
    if kind == 'empty':
        path.write_bytes(b'')
    elif kind == 'truncated':
        torch.save(dict(state_dict=dict(weight=torch.zeros(64, 64))), path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == 'text':
        path.write_text("_base_ = ['upernet.py']\nmodel = dict(type='EncoderDecoder')\n")
    elif kind == 'unsafe':
        torch.save(dict(state_dict=dict(weight=torch.zeros(2)), hook=RunsCode()), path)
    elif kind == 'no_tensors':
        torch.save(dict(meta=dict(epoch=3), state_dict=dict()), path)
    return str(path)


BAD_FILES = {
    'empty': 'is empty \\(0 bytes\\)',
    'truncated': 'truncated or corrupt PyTorch zip archive',
    'text': "is not a PyTorch checkpoint: it starts with b\"_base_",
    'unsafe': "refused by mmslak's safe loader: it pickles posix.system",
    'no_tensors': 'holds no tensors',
}


@pytest.mark.parametrize('kind', sorted(BAD_FILES))
def test_unreadable_files_are_named(kind, tmp_path):
    path = write_bad_file(tmp_path / f'{kind}.pth', kind)
    with pytest.raises(ValueError, match=BAD_FILES[kind]) as error:
        read_checkpoint(path)
    assert path in str(error.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match='Checkpoint not found: .*missing.pth'):
        read_checkpoint(str(tmp_path / 'missing.pth'))
    with pytest.raises(FileNotFoundError, match='is a folder'):
        read_checkpoint(str(tmp_path))


def test_an_unsafe_pickle_runs_nothing(tmp_path, capfd):
    path = write_bad_file(tmp_path / 'unsafe.pth', 'unsafe')
    with pytest.raises(ValueError, match='could run code'):
        read_checkpoint(path)
    assert 'unsafe' not in capfd.readouterr().out


@pytest.mark.parametrize('reader', ['init_cfg', 'load_weights', 'slak2mmslak', 'get_flops'])
def test_every_reader_names_a_text_file(reader, tmp_path, monkeypatch):
    """A text file once gave ``IndexError: pop from empty list`` or ``KeyError`` here."""
    path = write_bad_file(tmp_path / 'config.pth', 'text')
    expected = re.escape(path) + ' is not a PyTorch checkpoint'
    with pytest.raises(ValueError, match=expected):
        if reader == 'init_cfg':
            MODELS.build(dict(type='mmslak.SLaK', **TINY,
                              init_cfg=dict(type='Pretrained', checkpoint=path))).init_weights()
        elif reader == 'load_weights':
            load_weights(SLaK(**TINY), path, prefix='auto')
        elif reader == 'slak2mmslak':
            load_tool('tools/model_converters/slak2mmslak.py').main(
                [path, str(tmp_path / 'out.pth')])
        else:
            monkeypatch.setitem(SLaK.arch_settings, 'tiny', TINY['arch'])
            load_tool('tools/analysis_tools/get_flops.py').main(
                ['--arch', 'tiny', '--shape', '32', '32', '--checkpoint', path])


def test_non_finite_tensors():
    state_dict = dict(
        finite=torch.ones(3), nan=torch.tensor([1., float('nan')]),
        inf=torch.tensor([-float('inf')]).bfloat16(), count=torch.tensor(7), meta='not a tensor')
    assert non_finite_tensors(state_dict) == ['nan', 'inf']
    assert non_finite_tensors(dict(finite=torch.ones(3))) == []


def test_check_finite_refuses_or_warns(mmlogs):
    state_dict = {f'stages.0.{i}.bn.running_var': torch.full((2, ), float('nan'))
                  for i in range(10)}
    with pytest.raises(ValueError) as error:
        check_finite(state_dict, 'broken.pth')
    message = str(error.value)
    assert 'broken.pth' in message and 'stages.0.0.bn.running_var' in message
    assert '(10 in all)' in message and 'allow_non_finite=True' in message
    check_finite(state_dict, 'broken.pth', allow_non_finite=True)
    assert 'broken.pth holds NaN or infinite values in 10 tensor(s)' in mmlogs.text
    check_finite(dict(weight=torch.ones(2)), 'fine.pth')


def test_check_dtypes():
    model = dict(gamma=torch.zeros(4), num_batches_tracked=torch.tensor(0),
                 weight_mask=torch.ones(4, dtype=torch.bool))
    check_dtypes(dict(gamma=torch.ones(4), num_batches_tracked=torch.tensor(5),
                      weight_mask=torch.ones(4, dtype=torch.bool)), model, 'fine.pth')
    for wrong in (torch.zeros(4, dtype=torch.int64), torch.ones(4, dtype=torch.bool)):
        with pytest.raises(ValueError, match=f'wrong.pth .*gamma \\({wrong.dtype} in the file, '
                           'torch.float32 in the model\\)'):
            check_dtypes(dict(gamma=wrong), model, 'wrong.pth')


def test_short_list():
    assert short_list(['a', 'b']) == 'a, b'
    assert short_list(range(10), limit=3) == '0, 1, 2 ... (10 in all)'
