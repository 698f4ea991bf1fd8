"""model-index.yml and the metafiles: every recipe listed once, counts as get_flops.py gives them.

Parameters are checked for every recipe (the model is built on the meta device: no weights are
initialised). FLOPs need a traced forward pass at the recipe's input size, 5-60 s per recipe on
a CPU, so by default only SLaK-T + UperNet at 512 x 512 is counted; MMSLAK_CHECK_ALL_FLOPS=1
counts every recipe.
"""
import glob
import os
import os.path as osp

import pytest
import torch
import yaml

from mmslak.apis import build_downstream_model, load_downstream_config, slak_backbone_config
from ..test_tools.conftest import load_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Not recipes: the bases they inherit and the CPU demos.
NOT_RECIPES = ('_base_', 'demo')
FAST_FLOPS = {'slak-t_upernet_4xb4-amp-160k_ade20k-512x512'}
# The ImageNet-1K checkpoints the official SLaK README links (VITA-Group/SLaK).
OFFICIAL_CHECKPOINTS = {
    'https://drive.google.com/file/d/1Iut2f5FMS_77jGPYoUJDQzDIXOsax1u4/view?usp=sharing',  # T
    'https://drive.google.com/file/d/1etM6KQbnlsgDAZ37adsQJ3UI8Bbv2AVe/view?usp=sharing',  # S
    'https://drive.google.com/file/d/1duUxUD3RSblQ6eDHd0n-u0aulwGypf1j/view?usp=sharing',  # B
    'https://surfdrive.surf.nl/files/index.php/s/WiQYWNclJ9bW5XV',  # T, 120 epochs
}


def _load(relative_path):
    with open(osp.join(ROOT, relative_path)) as f:
        return yaml.safe_load(f)


def _metafiles():
    return _load('model-index.yml')['Import']


def _collections():
    return {c['Name']: (path, c) for path in _metafiles() for c in _load(path)['Collections']}


def _models():
    return [model for path in _metafiles() for model in _load(path)['Models']]


MODELS = _models()


def _id(model):
    return model['Name']


def test_model_index_imports_every_metafile():
    found = sorted(osp.relpath(path, ROOT)
                   for path in glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))
    assert sorted(_metafiles()) == found
    assert found == ['configs/detection/metafile.yml', 'configs/segmentation/metafile.yml']


def test_every_recipe_has_exactly_one_entry():
    recipes = sorted(
        osp.relpath(path, ROOT)
        for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if osp.relpath(path, osp.join(ROOT, 'configs')).split(os.sep)[0] not in NOT_RECIPES)
    listed = sorted(model['Config'] for model in MODELS)
    assert listed == recipes
    assert len(recipes) == 9


@pytest.mark.parametrize('model', MODELS, ids=_id)
def test_entry_is_complete(model):
    config = model['Config']
    assert osp.isfile(osp.join(ROOT, config)), config
    assert model['Name'] == osp.splitext(osp.basename(config))[0]
    metafile, collection = _collections()[model['In Collection']]
    assert osp.dirname(metafile) == osp.dirname(config)
    assert collection['Paper']['URL'] == 'https://arxiv.org/abs/2207.03620'
    assert collection['Code']['URL'] == 'https://github.com/VITA-Group/SLaK'
    assert osp.isfile(osp.join(ROOT, collection['README']))
    meta = model['Metadata']
    assert meta['Pretrained'] in OFFICIAL_CHECKPOINTS
    assert isinstance(meta['Parameters'], int) and isinstance(meta['FLOPs'], int)
    assert 'Weights' not in model  # mmslak publishes no trained weights
    for result in model['Results']:  # the official figures, labelled as such
        assert meta['Results Source'].startswith('official SLaK repository')
        assert set(result) == {'Task', 'Dataset', 'Metrics'}
        assert all(0 < value < 100 for value in result['Metrics'].values())


def test_official_results_are_the_published_ones():
    results = {(model['Name'], result['Dataset'], metric): value
               for model in MODELS for result in model['Results']
               for metric, value in result['Metrics'].items()}
    assert results == {
        ('slak-t_upernet_4xb4-amp-160k_ade20k-512x512', 'ADE20K', 'mIoU'): 47.6,
        ('slak-s_upernet_4xb4-amp-160k_ade20k-512x512', 'ADE20K', 'mIoU'): 49.4,
        ('slak-b_upernet_4xb4-amp-160k_ade20k-512x512', 'ADE20K', 'mIoU'): 50.0,
        ('cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-1x_coco', 'COCO', 'box AP'): 48.4,
        ('cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-1x_coco', 'COCO', 'mask AP'): 41.8,
        ('cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco', 'COCO', 'box AP'): 51.3,
        ('cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco', 'COCO', 'mask AP'): 44.3,
    }


@pytest.mark.parametrize('model', MODELS, ids=_id)
def test_parameters_as_get_flops_counts_them(model):
    """get_flops.py's ``params`` is the parameter count of the built model (test_get_flops.py)."""
    cfg = load_downstream_config(osp.join(ROOT, model['Config']))
    slak_backbone_config(cfg)
    with torch.device('meta'):
        built = build_downstream_model(cfg)
    assert sum(p.numel() for p in built.parameters()) == model['Metadata']['Parameters']


# Counting SLaK-B or a Cascade Mask R-CNN takes 20-100 s on 2 cores: the suite counts the fast
# recipes, MMSLAK_CHECK_ALL_FLOPS=1 every one (run when the metafiles were written).
FLOPS_CHECKED = MODELS if os.environ.get('MMSLAK_CHECK_ALL_FLOPS') else [
    model for model in MODELS if model['Name'] in FAST_FLOPS]


@pytest.mark.parametrize('model', FLOPS_CHECKED, ids=_id)
def test_flops_as_get_flops_counts_them(model):
    height, width = yaml.safe_load(model['Metadata']['FLOPs Input Size'].replace('(', '[')
                                   .replace(')', ']'))
    tool = load_tool('tools/analysis_tools/get_flops.py')
    table = tool.main([osp.join(ROOT, model['Config']), '--shape', str(height), str(width)])
    assert table['total']['flops'] == model['Metadata']['FLOPs']
    assert table['total']['params'] == model['Metadata']['Parameters']
