"""tools/train.py resumes bit-exactly; tools/test.py refuses a checkpoint that does not fit."""
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import InfiniteSampler

from mmslak.apis import build_downstream_model
from mmslak.datasets import make_tiny_datasets
from .conftest import ROOT, load_tool

DEMO = osp.join(ROOT, 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py')
# drop path (0.1 in the demo) and dropout (the heads' 0.1) draw random numbers every iteration
FOUR_ITERATIONS = [
    'randomness.seed=0', 'train_cfg.max_iters=4', 'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=2', 'default_hooks.checkpoint.max_keep_ckpts=3',
    'train_dataloader.batch_size=2', 'train_dataloader.num_workers=1',
    'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False'
]


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume')
    make_tiny_datasets(str(root / 'data' / 'tiny'), num_train=8, num_val=2)
    return root


def run_tool(tool, *args, cwd, check=True):
    result = subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.xfail(
    hasattr(InfiniteSampler, 'skip'), strict=True,
    reason='onedl-mmengine resumes by skipping samples in the sampler (InfiniteSampler.skip), so '
    "the data workers never draw the skipped batches' augmentations and the resumed run augments "
    'later batches differently; mmslak.RandomStateHook restores the main process only')
def test_resume_is_bit_identical_to_the_uninterrupted_run(tiny_root):
    straight, resumed = tiny_root / 'straight', tiny_root / 'resumed'
    # an empty work dir has nothing to resume: said, then trained from the start
    output = run_tool('train.py', DEMO, '--work-dir', str(straight), '--resume',
                      '--cfg-options', *FOUR_ITERATIONS, cwd=tiny_root).stdout
    assert 'no checkpoint to resume from' in output
    resumed.mkdir()
    shutil.copy(straight / 'iter_2.pth', resumed / 'iter_2.pth')
    output = run_tool('train.py', DEMO, '--work-dir', str(resumed), '--resume',
                      str(resumed / 'iter_2.pth'), '--cfg-options', *FOUR_ITERATIONS,
                      cwd=tiny_root).stdout
    assert 'Restored the random state of iteration 2' in output
    one, other = (torch.load(path / 'iter_4.pth', weights_only=False)
                  for path in (straight, resumed))
    assert one['state_dict'].keys() == other['state_dict'].keys()
    different = [key for key in one['state_dict']
                 if not torch.equal(one['state_dict'][key], other['state_dict'][key])]
    assert not different
    states = [checkpoint['optimizer']['state'] for checkpoint in (one, other)]
    assert states[0].keys() == states[1].keys()
    for index, state in states[0].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(states[1][index][name]))
    # the weights did change from iteration 2 to 4
    start = torch.load(straight / 'iter_2.pth', weights_only=False)['state_dict']
    assert any(not torch.equal(start[key], one['state_dict'][key]) for key in start)


def test_resume_from_a_missing_file_is_an_error(tmp_path):
    train = load_tool('tools/train.py')
    with pytest.raises(FileNotFoundError, match='--resume .*missing.pth: no such checkpoint'):
        train.main([DEMO, '--work-dir', str(tmp_path), '--resume', str(tmp_path / 'missing.pth')])


@pytest.fixture(scope='module')
def other_kernel_checkpoint(tiny_root):
    """A whole demo segmentor with stage kernels 31/29/27/13 instead of 51/49/47/13."""
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.kernel_size = [31, 29, 27, 13, 5]
    path = tiny_root / 'kernel31.pth'
    torch.save(dict(state_dict=build_downstream_model(cfg).state_dict()), path)
    return str(path)


def test_test_tool_refuses_a_checkpoint_of_another_kernel_size(tiny_root,
                                                               other_kernel_checkpoint):
    result = run_tool('test.py', DEMO, other_kernel_checkpoint, '--work-dir',
                      str(tiny_root / 'refused'), cwd=tiny_root, check=False)
    assert result.returncode != 0
    assert f'Checkpoint {other_kernel_checkpoint} does not fit the model' in result.stderr
    assert 'the kernel sizes differ' in result.stderr
    assert 'load_strict=False' in result.stderr


def test_load_strict_false_loads_what_fits_and_says_so(tiny_root, other_kernel_checkpoint):
    result = run_tool('test.py', DEMO, other_kernel_checkpoint, '--work-dir',
                      str(tiny_root / 'partial'), '--cfg-options', 'load_strict=False',
                      'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
                      cwd=tiny_root)
    assert 'load_strict=False: loading only what fits' in result.stdout + result.stderr


def test_test_tool_refuses_non_finite_weights(tiny_root):
    model = build_downstream_model(Config.fromfile(DEMO))
    state_dict = model.state_dict()
    state_dict['backbone.stages.0.0.large_kernel.small.bn.running_var'][0] = float('nan')
    path = tiny_root / 'nan.pth'
    torch.save(dict(state_dict=state_dict), path)
    result = run_tool('test.py', DEMO, str(path), '--work-dir', str(tiny_root / 'nan'),
                      cwd=tiny_root, check=False)
    assert result.returncode != 0
    assert (f'{path} holds NaN or infinite values in 1 tensor(s): '
            'backbone.stages.0.0.large_kernel.small.bn.running_var') in result.stderr
