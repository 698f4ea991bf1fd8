"""mmslak.checkpoint: the steps of the one pipeline, and the formats models register with it."""
import re

import pytest
import torch
import torch.nn as nn

import mmslak  # noqa: F401  (registers SLaK's checkpoint format)
from mmslak.checkpoint import (Layout, Mismatch, find_mismatch, format_of, format_scopes,
                               load_weights, recognise, translate_keys)
from mmslak.models import SLaK

TINY = dict(arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]), kernel_size=[7, 7, 7, 7, 3])


class Whole(nn.Module):
    """A whole model as mmseg builds one: a SLaK backbone and a head of its own naming."""

    def __init__(self, **backbone):
        super().__init__()
        self.backbone = SLaK(**TINY, **backbone)
        self.head = nn.Module()
        self.head.small_conv = nn.Conv2d(2, 2, 1)  # an official SLaK name, outside the backbone


def official_names(state_dict, prefix='backbone.'):
    """The keys as the official SLaK code names them under ``prefix``."""
    return {(key.replace('.vertical.', '.LoRA1.').replace('.small.', '.small_conv.')
             if key.startswith(prefix) else key): value for key, value in state_dict.items()}


def test_slak_registers_its_format_and_models_are_scoped_by_it():
    whole = Whole()
    assert format_of(whole.backbone).name == 'SLaK' and format_of(whole) is None
    assert [(scope.prefix, scope.module) for scope in format_scopes(whole)] == [
        ('backbone.', whole.backbone)]
    assert [scope.prefix for scope in format_scopes(whole.backbone)] == ['']


@pytest.mark.parametrize('entry', ['model', 'state_dict', 'module', None])
def test_the_layouts_are_recognised(entry):
    weights = {'module.backbone.stem.weight': torch.zeros(1)}
    layout = recognise({entry: weights, 'meta': {}} if entry else weights)
    assert layout == Layout(entry, weights) and layout.whole_model
    assert not recognise({'stem.weight': torch.zeros(1)}).whole_model


def test_renames_apply_inside_the_scopes_of_their_format_only():
    whole = Whole()
    state_dict = official_names(whole.state_dict())
    assert any('.LoRA1.' in key for key in state_dict) and 'head.small_conv.weight' in state_dict
    translated = translate_keys({'module.' + key: value for key, value in state_dict.items()},
                                scopes=format_scopes(whole))
    assert list(translated) == list(whole.state_dict())


def test_a_whole_model_loads_official_backbone_names(tmp_path):
    source, target = Whole(), Whole()
    path = tmp_path / 'whole.pth'
    torch.save(dict(state_dict=official_names(source.state_dict()), meta={}), path)
    load_weights(target, str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_a_backbone_takes_a_whole_model_file_with_the_auto_prefix(tmp_path, mmlogs):
    source, backbone = Whole(), SLaK(**TINY)
    path = tmp_path / 'whole.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    load_weights(backbone, str(path), prefix='auto')
    assert torch.equal(backbone.stages[0][0].pwconv1.weight,
                       source.backbone.stages[0][0].pwconv1.weight)
    assert f'tensors from {path}' in mmlogs.text
    with pytest.raises(ValueError, match="load with prefix='backbone.'"):
        load_weights(backbone, str(path))


def test_a_sparse_whole_model_derives_the_masks_a_file_lacks(tmp_path):
    source, target = Whole(), Whole(sparse=True)
    with torch.no_grad():
        source.backbone.stages[1][0].pwconv1.weight[:2] = 0
    path = tmp_path / 'dense.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    load_weights(target, str(path))  # no mask is missing
    mask = target.backbone.stages[1][0].pwconv1.weight_mask
    assert not mask[:2].any() and mask[2:].all()


def test_a_whole_model_names_the_backbone_cause_and_the_heads(tmp_path):
    source, target = Whole(), Whole()
    target.backbone = SLaK(**dict(TINY, kernel_size=[9, 7, 7, 7, 3]))
    target.head.small_conv = nn.Conv2d(2, 3, 1)
    path = tmp_path / 'other.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    with pytest.raises(ValueError, match=re.escape(
            f'Checkpoint {path} does not fit the model; likely cause: backbone: the kernel '
            'sizes differ (kernel_size=[9, 7, 7, 7, 3]); head differ in shape')) as error:
        load_weights(target, str(path), opt_out='--no-strict')
    assert str(error.value).endswith('pass --no-strict')
    assert 'shape mismatch (checkpoint vs model): backbone.stages.0.0.large_kernel' in str(
        error.value)


def test_find_mismatch_sorts_the_keys_and_lists_them_once():
    model = dict(a=torch.zeros(2), mask=torch.zeros(2), norm0=torch.zeros(2), c=torch.zeros(3))
    found = find_mismatch(model, dict(a=torch.zeros(2), head=torch.zeros(1), c=torch.zeros(4),
                                      extra=torch.zeros(1)),
                          derived=lambda key: key == 'mask', unused=lambda key: key == 'head',
                          fresh=lambda key: key.startswith('norm'))
    assert found == Mismatch(missing=[], unexpected=['extra'], mismatched=[('c', (4, ), (3, ))],
                             skipped=['head'], fresh=['norm0'])
    assert found.details() == ['shape mismatch (checkpoint vs model): c (4,) vs (3,)',
                               'not in the model: extra']
    assert not Mismatch([], [], [], skipped=['head'])
