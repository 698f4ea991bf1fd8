"""End to end: tools/train.py and tools/test.py (and the upstream tools) on the tiny datasets."""
import glob
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmslak.datasets import make_tiny_datasets
from mmslak.stack import installed_distributions

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = {
    'ade20k': 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py',
    'coco': 'configs/demo/cascade-mask-rcnn_slak-nano_fpn_4conv1fc-giou_ms-crop-24e_tiny-coco.py',
    'voc': 'configs/demo/faster-rcnn_slak-nano_fpn_8e_tiny-voc0712.py',
}
SHORT = {
    'ade20k':
    ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=2'],
    'coco': ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
    'voc': ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1'],
}
SINGLE_PROCESS = [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                                   'test_dataloader')
                  for key in ('num_workers=0', 'persistent_workers=False')]
METRICS = {
    'ade20k': ('mIoU', 'aAcc'),
    'coco': ('coco/bbox_mAP', 'coco/segm_mAP'),
    'voc': ('pascal_voc/mAP', ),
}
CHECKPOINT = {'ade20k': 'iter_2.pth', 'coco': 'epoch_1.pth', 'voc': 'epoch_1.pth'}


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A folder with ``data/tiny`` (few images), where the demo configs find their data."""
    root = tmp_path_factory.mktemp('tiny')
    make_tiny_datasets(str(root / 'data' / 'tiny'), num_train=8, num_val=4)
    return root


def run(script, *args, cwd):
    result = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def written_metrics(work_dir):
    """The metrics mmengine wrote to the JSON log of a test run."""
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return json.loads(f.readlines()[-1])


@pytest.mark.parametrize('dataset', sorted(DEMO))
def test_train_then_test(dataset, tiny_root):
    config = osp.join(ROOT, DEMO[dataset])
    work_dir = str(tiny_root / 'work_dirs' / dataset)
    options = ['--cfg-options', *SHORT[dataset], *SINGLE_PROCESS]
    run(osp.join(ROOT, 'tools/train.py'), config, '--work-dir', work_dir, *options, cwd=tiny_root)
    checkpoint = osp.join(work_dir, CHECKPOINT[dataset])
    assert osp.isfile(checkpoint)

    test_dir = str(tiny_root / 'work_dirs' / f'{dataset}_test')
    show_dir = str(tiny_root / 'show' / dataset)
    run(osp.join(ROOT, 'tools/test.py'), config, checkpoint, '--work-dir', test_dir,
        '--show-dir', show_dir, '--out', osp.join(test_dir, 'predictions.pkl'), *options,
        cwd=tiny_root)
    metrics = written_metrics(test_dir)
    for name in METRICS[dataset]:
        assert 0 <= metrics[name] <= 100, (name, metrics)
    assert osp.isfile(osp.join(test_dir, 'predictions.pkl'))
    assert glob.glob(osp.join(tiny_root, '**', 'show', dataset, '**', '*.*g'), recursive=True)


@pytest.mark.parametrize('package,dataset', [('mmseg', 'ade20k'), ('mmdet', 'voc')])
def test_upstream_train_tool_runs_a_demo_config(package, dataset, tiny_root):
    """The train.py shipped inside mmseg/mmdet imports mmslak through custom_imports alone."""
    if package == 'mmseg' and installed_distributions('mmseg') == ['onedl-mmsegmentation']:
        pytest.skip("onedl-mmengine looks for mmseg:: bases in the distribution 'mmsegmentation', "
                    "which the fork is not; mmseg's own train.py parses the config before "
                    'custom_imports bring in mmslak, which points the lookup at the fork')
    upstream_tool = osp.join(osp.dirname(__import__(package).__file__), '.mim', 'tools',
                             'train.py')
    work_dir = str(tiny_root / 'work_dirs' / f'upstream_{package}')
    output = run(upstream_tool, osp.join(ROOT, DEMO[dataset]), '--work-dir', work_dir,
                 '--cfg-options', *SHORT[dataset], *SINGLE_PROCESS, cwd=tiny_root)
    assert osp.isfile(osp.join(work_dir, CHECKPOINT[dataset]))
    assert METRICS[dataset][0].split('/')[-1] in output


def test_a_new_task_inherits_a_recipe(tiny_root):
    """A user config re-bases the demo UperNet on a generic dataset and trains unchanged."""
    work_dir = str(tiny_root / 'work_dirs' / 'rebased')
    output = run(osp.join(ROOT, 'tools/train.py'),
                 osp.join(ROOT, 'tests/data/configs/rebased_tiny_segmentation.py'), '--work-dir',
                 work_dir, '--cfg-options', *SHORT['ade20k'], *SINGLE_PROCESS, cwd=tiny_root)
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert 'mIoU' in output and 'plant' in output
