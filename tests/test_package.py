"""The plugin imports, owns its registry scope, and resumes Runner checkpoints safely."""
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

import mmslak
from mmslak.engine.runner import CheckedRunner
from mmslak.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from mmslak.utils import safe_load


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
    return CheckedRunner(
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
    # import mmslak widened nothing: torch's own restricted load still refuses the file
    with pytest.raises(pickle.UnpicklingError):
        torch.load(checkpoint, weights_only=True)
    loaded = safe_load(checkpoint)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    model = Toy()
    model.load_state_dict(loaded['state_dict'])
    torch.testing.assert_close(model.linear.weight, first.model.linear.weight)

    second = toy_runner(tmp_path, max_epochs=2, resume=True)  # reads through safe_load
    second.train()
    assert second.train_loop.iter == 8 and second.epoch == 2
    log_scalars = second.message_hub.log_scalars
    assert len(log_scalars['train/loss'].data[0]) == 8  # history carried over from epoch 1
    assert second.optim_wrapper.get_lr()['lr'][0] == pytest.approx(0.001)


class Evil:

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return getattr, (self.owner, self.name)


@pytest.mark.parametrize('owner,name,refused', [
    (HistoryBuffer, '__init__', 'HistoryBuffer statistics methods'),
    (HistoryBuffer, 'register_statistics', 'HistoryBuffer statistics methods'),
    (torch.Tensor, 'to', 'torch.Tensor'),
])
def test_getattr_is_allowed_only_for_history_buffer_methods(owner, name, refused, tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'x': Evil(owner, name)}, path)
    with pytest.raises(pickle.UnpicklingError, match=refused):
        safe_load(path)
    torch.save({'x': Evil(HistoryBuffer, 'mean')}, path)
    assert safe_load(path)['x'] is HistoryBuffer.mean
