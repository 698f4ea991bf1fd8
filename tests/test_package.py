"""The plugin imports, owns its registry scope, and lets Runner checkpoints load (torch 2.13)."""
import pickle
import subprocess
import sys
import uuid

import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import HOOKS as ROOT_HOOKS
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint

import mmslak
from mmslak.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS


def test_version():
    assert mmslak.__version__ == '0.1.0'


def test_scope_is_a_child_of_the_root_registries():
    for registry, root in ((MODELS, ROOT_MODELS), (HOOKS, ROOT_HOOKS)):
        assert registry.scope == 'mmslak' and registry.parent is root
        assert root.children['mmslak'] is registry
    assert OPTIM_WRAPPER_CONSTRUCTORS.get('LearningRateDecayOptimizerConstructor') is not None


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_downstream_registries_reach_the_backbone(scope):
    registry = {'mmseg': 'mmseg.registry', 'mmdet': 'mmdet.registry'}[scope]
    downstream_models = __import__(registry, fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        backbone = downstream_models.build(dict(type='mmslak.SLaK', arch=dict(
            depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]), kernel_size=[7, 7, 7, 7, 3]))
    assert type(backbone).__name__ == 'SLaK'


WITHOUT_DOWNSTREAM = """
import sys
# pycocotools: only the tiny datasets need it (the GPU machine has none)
for name in ('mmseg', 'mmdet', 'mmcv.ops', 'mmcv._ext', 'pycocotools'):
    sys.modules[name] = None  # any import of these now fails
import torch
import mmslak
from mmslak.models.heads import CentroidClassifier
from mmslak.registry import HOOKS, MODELS
backbone = MODELS.build(dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]),
                             kernel_size=[7, 7, 7, 7, 3], sparse=True))
features = backbone(torch.randn(2, 3, 32, 32))
logits = CentroidClassifier(features[0].shape[1], 3)(features[0])
loss = MODELS.build(dict(type='mmslak.CentroidBCELoss'))(logits, torch.zeros(2, 8, 8).long())
assert torch.isfinite(loss) and HOOKS.get('SparseMaskHook') is not None
assert MODELS.get('GaussUPerHead') is None
print(sorted(name for name, module in sys.modules.items()
             if module is not None and name.split('.')[0] in ('mmseg', 'mmdet', 'mmcv')))
"""


def test_backbone_and_classifier_need_no_mmseg_mmdet_mmcv_ops_or_pycocotools():
    result = subprocess.run([sys.executable, '-c', WITHOUT_DOWNSTREAM], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.strip().splitlines()[-1]
    assert "'mmcv.cnn'" in loaded and 'mmseg' not in loaded and 'mmdet' not in loaded
    assert "'mmcv.ops'" not in loaded


def test_gauss_heads_are_registered_where_mmseg_is():
    from mmslak.models.heads import GaussFCNHead, GaussUPerHead
    assert MODELS.get('GaussUPerHead') is GaussUPerHead
    assert MODELS.get('GaussFCNHead') is GaussFCNHead


class Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        return dict(loss=(out - labels).square().mean()) if mode == 'loss' else out


def toy_runner(work_dir, max_epochs, resume=False):
    torch.manual_seed(0)
    # A name of its own: runners started within the same second would otherwise share their
    # timestamp name and with it the message hub (the history of the first run).
    data = [dict(inputs=torch.randn(2), labels=torch.randn(1)) for _ in range(8)]
    return Runner(
        model=Toy(), work_dir=str(work_dir), resume=resume,
        experiment_name=f'toy-{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[1], end=10),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)))


def test_runner_checkpoint_loads_and_resumes(tmp_path):
    first = toy_runner(tmp_path, max_epochs=1)
    first.train()
    checkpoint = tmp_path / 'epoch_1.pth'
    # without `import mmslak`, torch refuses the message hub's HistoryBuffer and numpy values
    plain_load = subprocess.run(
        [sys.executable, '-c', f'import torch; torch.load({str(checkpoint)!r}, weights_only=True)'],
        capture_output=True, text=True)
    assert plain_load.returncode != 0 and 'Weights only load failed' in plain_load.stderr
    loaded = torch.load(checkpoint, weights_only=True)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    model = Toy()
    load_checkpoint(model, str(checkpoint))
    torch.testing.assert_close(model.linear.weight, first.model.linear.weight)

    second = toy_runner(tmp_path, max_epochs=2, resume=True)
    second.train()
    assert second.train_loop.iter == 8 and second.epoch == 2
    log_scalars = second.message_hub.log_scalars
    assert len(log_scalars['train/loss'].data[0]) == 8  # history carried over from epoch 1
    assert second.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.001)


class Evil:

    def __reduce__(self):
        return getattr, (torch.Tensor, 'to')


def test_getattr_is_allowed_only_for_history_buffer_methods(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
        torch.load(path, weights_only=True)
