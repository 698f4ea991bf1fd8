"""The Gauss bbox heads for mmdet, the learned gamma, and a Gauss Faster R-CNN trained on the
tiny VOC set through tools/train.py."""
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch
from mmengine.registry import init_default_scope

from mmslak.datasets import make_tiny_datasets
from mmslak.models.heads import (CentroidBCELoss, CentroidClassifier, GaussConvFCBBoxHead,
                                 GaussLinear, GaussShared2FCBBoxHead)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GAUSS_VOC_DEMO = osp.join(ROOT, 'configs', 'demo',
                          'faster-rcnn_slak-nano_fpn-gauss_8e_tiny-voc0712.py')
GAUSS_COCO_DEMO = osp.join(
    ROOT, 'configs', 'demo',
    'cascade-mask-rcnn_slak-nano_fpn_4conv1fc-giou-gauss_ms-crop-24e_tiny-coco.py')


def build_head(**kwargs):
    from mmdet.registry import MODELS
    init_default_scope('mmdet')
    cfg = dict(type='mmslak.GaussShared2FCBBoxHead', in_channels=4, fc_out_channels=16,
               roi_feat_size=3, num_classes=3, gamma=0.5)
    return MODELS.build({**cfg, **kwargs})


def test_bbox_head_logits_are_the_direct_formula():
    torch.manual_seed(0)
    head = build_head(learn_gamma=True)
    assert isinstance(head, GaussShared2FCBBoxHead) and isinstance(head.fc_cls, GaussLinear)
    assert isinstance(head.loss_cls, CentroidBCELoss) and head.fc_cls.centroids.shape == (4, 16)
    centroids = head.fc_cls.centroids.detach().clone()
    head.init_weights()  # mmdet's Normal init of fc_cls must leave the centroids alone
    assert torch.equal(head.fc_cls.centroids, centroids)
    with torch.no_grad():
        head.fc_cls.log_gamma.copy_(torch.tensor([0.1, 0.5, 2., 4.]).log())
    rois = torch.randn(5, 4, 3, 3)
    cls_score, bbox_pred = head(rois)
    feats = head.relu(head.shared_fcs[1](head.relu(head.shared_fcs[0](rois.flatten(1)))))
    gamma = torch.tensor([0.1, 0.5, 2., 4.])
    direct = -gamma * (feats[:, None] - centroids[None]).pow(2).sum(-1)
    torch.testing.assert_close(cls_score, direct, rtol=1e-4, atol=1e-4)
    assert bbox_pred.shape == (5, 12)
    # The boxes' scores are the confidences themselves, background last.
    torch.testing.assert_close(head.loss_cls.get_activation(cls_score), direct.exp(), rtol=1e-4,
                               atol=1e-5)


def test_bbox_head_loss_is_one_vs_rest_with_a_background_centroid():
    torch.manual_seed(0)
    head = build_head()
    cls_score = -torch.rand(6, 4) * 3
    labels = torch.tensor([0, 1, 2, 3, 3, 3])  # 3 is background
    losses = head.loss(cls_score, torch.zeros(6, 12), torch.zeros(6, 5), labels, torch.ones(6),
                       torch.zeros(6, 4), torch.zeros(6, 4))
    conf = cls_score.exp()
    onehot = torch.nn.functional.one_hot(labels, 4).bool()
    direct = -torch.where(onehot, conf.log(), (1 - conf).log()).sum(1).mean()
    torch.testing.assert_close(losses['loss_cls'], direct)
    expected_acc = (cls_score.argmax(1) == labels).float().mean() * 100
    torch.testing.assert_close(losses['acc'], expected_acc)


def test_bbox_heads_refuse_what_would_not_be_gauss():
    with pytest.raises(ValueError, match='cls_predictor_cfg'):
        build_head(cls_predictor_cfg=dict(type='Linear'))
    with pytest.raises(ValueError, match='CentroidBCELoss'):
        build_head(loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False))


def test_cascade_config_puts_a_gauss_head_in_every_stage():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    cfg = Config.fromfile(GAUSS_COCO_DEMO)
    init_default_scope('mmdet')
    heads = [MODELS.build(head) for head in cfg.model.roi_head.bbox_head]
    assert len(heads) == 3 and all(isinstance(head, GaussConvFCBBoxHead) for head in heads)
    assert all(head.fc_cls.centroids.shape == (4, 256) for head in heads)


@pytest.mark.parametrize('config, stages', [(GAUSS_VOC_DEMO, 1), (GAUSS_COCO_DEMO, 3)])
def test_demo_centroids_learn_ten_times_faster(config, stages):
    from mmengine.optim import build_optim_wrapper

    from mmslak.apis import build_downstream_model, load_downstream_config
    cfg = load_downstream_config(config)
    model = build_downstream_model(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    rates = {name: group['lr'] for group in wrapper.optimizer.param_groups
             for name in group['param_names']}
    centroids = [name for name in rates if name.endswith('fc_cls.centroids')]
    assert len(centroids) == stages
    for name in centroids:
        head_weight = name.replace('fc_cls.centroids', 'fc_reg.weight')
        assert rates[name] == pytest.approx(10 * rates[head_weight])


def test_learned_gamma_learns_and_stays_in_range():
    """Tight, well separated classes: the BCE wants a much larger gamma than 0.01, which only
    the learned classifier can take; a fixed one stays where it is."""
    torch.manual_seed(0)
    means = torch.eye(3) * 3
    label = torch.randint(0, 3, (64, ))
    feats = means[label] + 0.05 * torch.randn(64, 3)
    runs = {}
    for learn in (False, True):
        classifier = CentroidClassifier(3, 3, gamma=0.01, learn_gamma=learn,
                                        gamma_range=(1e-3, 5.))
        with torch.no_grad():
            classifier.centroids.copy_(means)
        optimizer = torch.optim.Adam(classifier.parameters(), lr=0.1)
        for _ in range(80):
            optimizer.zero_grad()
            loss = CentroidBCELoss()(classifier(feats), label)
            loss.backward()
            optimizer.step()
        runs[learn] = (loss.item(), classifier.scale().detach())
    fixed_loss, fixed_gamma = runs[False]
    learned_loss, learned_gamma = runs[True]
    assert torch.equal(fixed_gamma, torch.full((3, ), 0.01))
    assert (learned_gamma > 10 * 0.01).all() and (learned_gamma <= 5.).all()
    assert learned_loss < 0.2 * fixed_loss
    classifier = CentroidClassifier(3, 3, gamma=1., learn_gamma=True, gamma_range=(0.5, 2.))
    with torch.no_grad():
        classifier.log_gamma.fill_(math.log(100.))
    assert torch.allclose(classifier.scale(), torch.full((3, ), 2.))
    with pytest.raises(ValueError, match='gamma'):
        CentroidClassifier(3, 3, gamma=10., learn_gamma=True, gamma_range=(0.5, 2.))


@pytest.fixture(scope='module')
def trained_voc(tmp_path_factory):
    root = tmp_path_factory.mktemp('gauss_voc')
    make_tiny_datasets(str(root / 'data' / 'tiny'), which=('voc', ), num_train=4, num_val=2)
    work_dir = root / 'work_dir'
    options = [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'randomness.seed=0',
        'default_hooks.logger.interval=1'
    ] + [
        f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        for key in ('num_workers=0', 'persistent_workers=False')
    ]
    result = subprocess.run([
        sys.executable, osp.join(ROOT, 'tools/train.py'), GAUSS_VOC_DEMO, '--work-dir',
        str(work_dir), '--cfg-options', *options
    ], cwd=root, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return root, work_dir, output


def test_gauss_faster_rcnn_trains_on_tiny_voc(trained_voc):
    _, work_dir, output = trained_voc
    assert 'loss_cls' in output and 'mAP' in output
    assert osp.isfile(work_dir / 'epoch_1.pth')
