"""tools/analysis_tools/get_flops.py: dense and sparse-aware parameters and FLOPs."""
import pytest
import torch

from mmslak.analysis import complexity_by_group, simulate_sparsity, slak_stage_groups
from mmslak.apis import build_downstream_model, load_downstream_config
from mmslak.models import SLaK
from .conftest import DET_CONFIG, SEG_CONFIG, load_tool

STAGES = ['stem', 'stage0', 'stage1', 'stage2', 'stage3', 'out_norms']


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/analysis_tools/get_flops.py')


def test_slak_tiny_matches_the_paper(tool, capsys):
    table = tool.main(['--arch', 'tiny', '--shape', '224', '224', '--sparsity', '0.4'])
    printed = capsys.readouterr().out
    assert 'params (sparse)' in printed and 'stage2' in printed
    assert list(table) == STAGES + ['total']
    total = table['total']
    assert total['params'] == sum(p.numel() for p in SLaK(arch='tiny').parameters())
    assert total['sparse_params'] / total['params'] == pytest.approx(0.6, abs=0.01)
    assert total['sparse_flops'] / total['flops'] == pytest.approx(0.6, abs=0.01)
    # SLaK paper, SLaK-T at 224 x 224 with 40% sparsity: ~30M parameters, ~5.0G FLOPs.
    assert 29e6 < total['sparse_params'] < 31e6
    assert 4.8e9 < total['sparse_flops'] < 5.5e9
    for key in total:
        assert sum(table[stage][key] for stage in STAGES) == pytest.approx(total[key])


def test_counts_do_not_depend_on_autograd():
    """Inference without gradients may take fused CPU kernels: the count must not change."""
    groups = slak_stage_groups()
    model = SLaK(arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]),
                 kernel_size=[13, 11, 9, 7, 3]).eval()
    inputs = torch.zeros(1, 3, 64, 64)
    with_grad = complexity_by_group(model, inputs, groups)
    model.requires_grad_(False)
    with torch.no_grad():
        assert complexity_by_group(model, inputs, groups) == with_grad
    assert with_grad['stage0']['flops'] > 0


def test_dense_count_without_sparsity(tool):
    table = tool.main([SEG_CONFIG, '--shape', '64', '64'])
    # random dense weights: at most a few values happen to be exactly zero
    assert table['total']['sparse_params'] == pytest.approx(table['total']['params'], rel=1e-4)
    assert table['total']['sparse_flops'] == pytest.approx(table['total']['flops'], rel=1e-4)


@pytest.mark.parametrize('config,heads', [(SEG_CONFIG, ['decode_head', 'auxiliary_head']),
                                          (DET_CONFIG, ['neck', 'rpn_head', 'roi_head'])])
def test_whole_model_simulated_sparsity(tool, config, heads):
    table = tool.main([config, '--shape', '64', '64', '--sparsity', '0.4'])
    model = build_downstream_model(load_downstream_config(config))
    assert table['total']['params'] == sum(p.numel() for p in model.parameters())
    for part in heads:  # only the backbone is sparse
        assert table[part]['sparse_params'] == table[part]['params']
    backbone = [table[f'backbone.{stage}'] for stage in STAGES[:-1]]
    params = sum(row['params'] for row in backbone)
    assert sum(row['sparse_params'] for row in backbone) / params == pytest.approx(0.6, abs=0.05)
    assert table['total']['flops'] > sum(row['flops'] for row in backbone) > 0


def test_checkpoint_zeros(tool, seg_checkpoint, tmp_path):
    _, model = seg_checkpoint
    simulate_sparsity(model.backbone, 0.5, seed=1)
    path = tmp_path / 'sparse.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    table = tool.main([SEG_CONFIG, '--shape', '64', '64', '--checkpoint', str(path)])
    stage = table['backbone.stage2']
    assert stage['sparse_params'] < 0.6 * stage['params']
    assert stage['sparse_flops'] < 0.6 * stage['flops']


def test_errors(tool, tmp_path, non_slak_config, classifier_config):
    with pytest.raises(ValueError, match='sparsity'):
        tool.main(['--arch', 'tiny', '--sparsity', '1.5'])
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        tool.main([str(tmp_path / 'missing.py')])
    with pytest.raises(ValueError, match='not a SLaK backbone'):
        tool.main([non_slak_config])
    with pytest.raises(ValueError, match='neither an mmseg nor an mmdet'):
        tool.main([classifier_config])
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        tool.main([SEG_CONFIG, '--shape', '64', '64', '--checkpoint', str(tmp_path / 'no.pth')])
    with pytest.raises(SystemExit):  # a config and --arch at once
        tool.main([SEG_CONFIG, '--arch', 'tiny'])


def test_help(tool, capsys):
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    assert 'sparse-aware' in capsys.readouterr().out
