"""tools/dist_train.sh and tools/dist_test.sh with 2 CPU processes (gloo on the loopback)."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmslak.apis import build_downstream_model
from mmslak.datasets import make_tiny_datasets
from mmslak.registry import MODELS
from tests.distributed import LOOPBACK_ENV, free_port, run_launcher

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py')
PLUGINS = osp.join(ROOT, 'tests', 'data', 'plugins')
# 4 iterations of batch 2 on each process, from a backbone checkpoint with 40% zeros
CONFIG = """_base_ = {demo!r}
custom_imports = dict(imports=['mmslak', 'rank_state_dump'], allow_failed_imports=False)
custom_hooks = [dict(type='mmslak.SparseMaskHook'), dict(type='RankStateDumpHook')]
model = dict(backbone=dict(sparse=True, init_cfg=dict(type='Pretrained', checkpoint={source!r})))
train_cfg = dict(max_iters=4, val_interval=4)
default_hooks = dict(checkpoint=dict(interval=4), logger=dict(interval=1))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
"""


def sparse_backbone_checkpoint(path):
    """A nano SLaK backbone (the demo's) whose 2-D and 4-D weights are 40% zeros."""
    cfg = Config.fromfile(DEMO)
    backbone = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    backbone.init_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in backbone.parameters():
            if param.dim() in (2, 4):
                param.mul_(torch.rand(param.shape, generator=generator) >= 0.4)
    torch.save(backbone.state_dict(), path)
    return backbone.state_dict()


@pytest.fixture(scope='module')
def dist_run(tmp_path_factory):
    """Train on 2 processes with tools/dist_train.sh; the folder, config and source weights."""
    root = tmp_path_factory.mktemp('dist')
    make_tiny_datasets(str(root / 'data' / 'tiny'), num_train=8, num_val=4)
    source = sparse_backbone_checkpoint(root / 'sparse_backbone.pth')
    config = root / 'dist_config.py'
    config.write_text(CONFIG.format(demo=DEMO, source=str(root / 'sparse_backbone.pth')))
    env = dict(os.environ, **LOOPBACK_ENV, PORT=str(free_port()), PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([PLUGINS, os.environ.get('PYTHONPATH', '')]))
    output = run_launcher(['bash', osp.join(ROOT, 'tools/dist_train.sh'), str(config), '2',
                           '--work-dir', str(root / 'train')], cwd=root, env=env)
    return dict(root=root, config=str(config), source=source, env=env, output=output)


def rank_states(dist_run):
    return [torch.load(dist_run['root'] / 'train' / f'rank{rank}_state.pth', weights_only=False)
            for rank in range(2)]


def test_two_processes_train_in_a_gloo_data_parallel_wrapper(dist_run):
    states = rank_states(dist_run)
    for state in states:
        assert state['world_size'] == 2 and state['backend'] == 'gloo'
        assert 'MMDistributedDataParallel' in state['wrapper_classes']
        # the demo's SyncBN layers run synchronised over gloo
        assert state['norm_types'] == ['CPUSyncBatchNorm']


def test_both_ranks_hold_identical_parameters_and_buffers(dist_run):
    rank0, rank1 = (state['state_dict'] for state in rank_states(dist_run))
    assert rank0.keys() == rank1.keys()
    different = [name for name in rank0 if not torch.equal(rank0[name], rank1[name])]
    assert not different
    checkpoint = torch.load(dist_run['root'] / 'train' / 'iter_4.pth', weights_only=False)
    assert checkpoint['state_dict'].keys() == rank0.keys()
    assert len(checkpoint['random_state']) == 2  # each process's, for an exact resume
    assert all(torch.equal(tensor, rank0[name])
               for name, tensor in checkpoint['state_dict'].items())


def test_sparse_masks_are_the_source_zeros_on_both_ranks(dist_run):
    saved = torch.load(dist_run['root'] / 'train' / 'iter_4.pth', weights_only=False)
    masks = {name: mask for name, mask in saved['state_dict'].items()
             if name.endswith('weight_mask')}
    assert len(masks) == sum(param.dim() in (2, 4) for name, param in dist_run['source'].items()
                             if name.endswith('weight'))
    for name, mask in masks.items():
        weight_name = name[:-len('_mask')]
        source_zeros = dist_run['source'][weight_name[len('backbone.'):]] == 0
        assert torch.equal(mask, ~source_zeros), name
        assert not saved['state_dict'][weight_name][source_zeros].any(), name
        for state in rank_states(dist_run):
            assert torch.equal(state['state_dict'][name], mask)


def test_layer_decay_groups_are_those_of_one_process(dist_run):
    cfg = Config.fromfile(dist_run['config'], import_custom_modules=False)
    init_default_scope('mmseg')
    model = build_downstream_model(cfg)
    optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    expected = [(group['group_name'], group['lr'], group['weight_decay'], group['param_names'])
                for group in optimizer.param_groups]
    assert len(expected) == 12  # 6 stage-wise layer ids used, with and without weight decay
    for state in rank_states(dist_run):
        got = [(group['name'], group['initial_lr'], group['weight_decay'], group['param_names'])
               for group in state['param_groups']]
        assert got == expected


def written_metrics(work_dir):
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return json.loads(f.readlines()[-1])


def test_dist_test_reports_the_metrics_of_one_process(dist_run):
    root, checkpoint = dist_run['root'], str(dist_run['root'] / 'train' / 'iter_4.pth')
    run_launcher(['bash', osp.join(ROOT, 'tools/dist_test.sh'), dist_run['config'], checkpoint,
                  '2', '--work-dir', str(root / 'test2')], cwd=root, env=dist_run['env'])
    single = subprocess.run([sys.executable, osp.join(ROOT, 'tools/test.py'), dist_run['config'],
                             checkpoint, '--work-dir', str(root / 'test1')], cwd=root,
                            env=dist_run['env'], capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    two, one = written_metrics(str(root / 'test2')), written_metrics(str(root / 'test1'))
    for name in ('aAcc', 'mIoU', 'mAcc'):
        assert two[name] == one[name], (name, two, one)
