"""The Gauss classifier, its loss and the Gauss decode heads."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from torch._subclasses.fake_tensor import FakeTensorMode

from mmslak.models.heads import (CentroidBCELoss, CentroidClassifier, GaussFCNHead, GaussUPerHead,
                                 centroid_bce_loss)


def direct_confidences(feats, centroids, gamma=1.):
    """exp(-gamma ||phi - z_c||^2) pixel by pixel, without expanding the square."""
    differences = feats[:, None] - centroids[None, :, :, None, None]
    return torch.exp(-gamma * differences.pow(2).sum(2))


@pytest.mark.parametrize('gamma', [1., 0.25])
def test_output_is_the_gaussian_of_the_distance(gamma):
    torch.manual_seed(0)
    classifier = CentroidClassifier(6, 4, gamma=gamma, init_std=0.5)
    feats = torch.randn(2, 6, 5, 7) * 0.5
    expected = direct_confidences(feats, classifier.centroids.detach(), gamma)
    torch.testing.assert_close(classifier.confidences(feats), expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(classifier(feats), expected.log(), rtol=1e-4, atol=1e-5)
    assert (classifier(feats) <= 0).all()


def test_feature_at_a_centroid_is_certain():
    classifier = CentroidClassifier(3, 2, init_std=1.)
    feats = classifier.centroids.detach()[1][None, :, None, None].expand(1, 3, 2, 2)
    confidences = classifier.confidences(feats)
    torch.testing.assert_close(confidences[:, 1], torch.ones(1, 2, 2))
    assert (confidences[:, 0] < 1).all()


def test_half_precision_features_give_float32_distances():
    classifier = CentroidClassifier(8, 3)
    feats = torch.randn(1, 8, 4, 4)
    out = classifier(feats.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, classifier(feats.bfloat16().float()))


def test_gradients_reach_features_and_centroids():
    torch.manual_seed(0)
    classifier = CentroidClassifier(4, 3, init_std=0.3)
    feats = (torch.randn(2, 4, 3, 3) * 0.3).requires_grad_()
    classifier(feats).sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert classifier.centroids.grad is not None and classifier.centroids.grad.abs().sum() > 0
    # d/dz_c of -||phi - z_c||^2 summed over pixels is 2 sum(phi - z_c).
    expected = 2 * (feats.detach().sum((0, 2, 3))[None] - 18 * classifier.centroids.detach())
    torch.testing.assert_close(classifier.centroids.grad, expected, rtol=1e-4, atol=1e-4)


def test_wrong_feature_channels_are_refused():
    with pytest.raises(ValueError, match='shape'):
        CentroidClassifier(4, 3)(torch.zeros(1, 5, 2, 2))
    with pytest.raises(ValueError, match='gamma'):
        CentroidClassifier(4, 3, gamma=0)


def direct_bce(log_conf, label, ignore_index):
    """Mean over non-ignored pixels of the summed per-class BCE of the confidences."""
    valid = label != ignore_index
    target = F.one_hot(label.clamp(max=log_conf.size(1) - 1), log_conf.size(1)).permute(0, 3, 1, 2)
    loss = F.binary_cross_entropy(log_conf.exp(), target.float(), reduction='none').sum(1)
    return loss[valid].mean()


def test_loss_equals_binary_cross_entropy_and_skips_ignored_pixels():
    torch.manual_seed(0)
    log_conf = -torch.rand(2, 4, 3, 5) * 3 - 0.01
    label = torch.randint(0, 4, (2, 3, 5))
    label[0, 0, :3] = 255
    loss = CentroidBCELoss()(log_conf, label, ignore_index=255)
    torch.testing.assert_close(loss, direct_bce(log_conf, label, 255), rtol=1e-5, atol=1e-6)
    changed = log_conf.clone()
    changed[0, :, 0, :3] = -50.
    assert CentroidBCELoss()(changed, label, ignore_index=255) == loss
    per_pixel = CentroidBCELoss(loss_weight=2.)(log_conf, label, reduction_override='none')
    assert per_pixel.shape == label.shape and (per_pixel[0, 0, :3] == 0).all()
    torch.testing.assert_close(per_pixel.sum() / 2, loss * 27)


def test_loss_is_finite_at_a_wrong_centroid():
    log_conf = torch.tensor([0., -1e-9, -200.])[None, :, None, None].requires_grad_()
    loss = CentroidBCELoss()(log_conf, torch.tensor([[[2]]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(log_conf.grad).all()
    assert CentroidBCELoss().loss_name.startswith('loss_')


def test_loss_refuses_bad_arguments():
    with pytest.raises(ValueError, match='reduction'):
        CentroidBCELoss(reduction='max')
    with pytest.raises(ValueError, match='labels'):
        CentroidBCELoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
    label = torch.tensor([[[0, 1, 255], [2, 0, 1]]])
    with pytest.raises(ValueError, match=r'\[0, 2\).*\[2\]'):
        CentroidBCELoss()(-torch.rand(1, 2, 2, 3), label, ignore_index=255)


@pytest.mark.parametrize('kwargs', [
    dict(), dict(reduction_override='sum'), dict(reduction_override='none'),
    dict(avg_factor=3.), dict(avg_factor=torch.tensor(3., device='meta'))],
    ids=['mean', 'sum', 'none', 'avg_factor', 'tensor_avg_factor'])
def test_loss_reads_nothing_back_on_meta_tensors(kwargs):
    """Meta tensors have no values: ``.item()``, ``bool()`` or a boolean mask raise on them, so
    the loss and its gradient computing there proves they never wait for a GPU."""
    log_conf = torch.empty(2, 4, 3, 5, device='meta', requires_grad=True)
    label = torch.empty(2, 3, 5, dtype=torch.long, device='meta')
    with pytest.raises(RuntimeError, match='(?i)meta'):
        bool(label.any())  # what the loss must never do
    loss = CentroidBCELoss()(log_conf, label, weight=torch.empty(2, 3, 5, device='meta'),
                             **kwargs)
    loss.sum().backward()
    assert loss.device.type == 'meta' and log_conf.grad.shape == log_conf.shape
    assert loss.shape == (label.shape if kwargs.get('reduction_override') == 'none' else ())


def test_loss_asserts_labels_on_the_device_where_it_must_not_wait(monkeypatch):
    """On CUDA the labels are checked by ``torch._assert_async``; its CPU kernel, which raises
    at once, runs the same check here."""
    monkeypatch.setattr(centroid_bce_loss, '_ASYNC_ASSERT_DEVICES', ('cpu', ))
    log_conf = -torch.rand(1, 2, 2, 3)
    label = torch.tensor([[[0, 1, 255], [1, 0, 1]]])
    loss = CentroidBCELoss()(log_conf, label)
    torch.testing.assert_close(loss, direct_bce(log_conf, label, 255))
    label[0, 1, 2] = 2
    with pytest.raises(RuntimeError, match=r'\[0, 2\) or the ignore index 255'):
        CentroidBCELoss()(log_conf, label)


def test_classifier_reads_nothing_back():
    """Fake tensors have no values and raise where one is read (``.item()``, ``bool()``, a
    boolean mask). Meta tensors would do, but autocast knows no 'meta' device."""
    classifier = CentroidClassifier(6, 4)
    with FakeTensorMode(allow_non_fake_inputs=True):
        feats = torch.empty(2, 6, 5, 7, requires_grad=True)
        out = classifier(feats.bfloat16())
        out.sum().backward()
    assert out.shape == (2, 4, 5, 7) and out.dtype == torch.float32
    assert feats.grad.shape == feats.shape and classifier.centroids.grad.shape == (4, 6)


def test_loss_weights_pixels_and_takes_an_average_factor():
    torch.manual_seed(0)
    log_conf = -torch.rand(1, 3, 2, 4) * 3 - 0.01
    label = torch.randint(0, 3, (1, 2, 4))
    weight = torch.rand(1, 2, 4)
    per_pixel = CentroidBCELoss()(log_conf, label, reduction_override='none')
    weighted = CentroidBCELoss()(log_conf, label, weight=weight, avg_factor=5.)
    torch.testing.assert_close(weighted, (per_pixel * weight).sum() / 5.)
    total = CentroidBCELoss(reduction='sum')(log_conf, label, weight=weight)
    torch.testing.assert_close(total, (per_pixel * weight).sum())


def test_heads_build_from_an_mmseg_config():
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    head = MODELS.build(
        dict(type='mmslak.GaussUPerHead',
             in_channels=[4, 8],
             in_index=[0, 1],
             channels=8,
             pool_scales=(1, 2),
             num_classes=3,
             norm_cfg=dict(type='BN')))
    aux = MODELS.build(
        dict(type='mmslak.GaussFCNHead',
             in_channels=8,
             in_index=1,
             channels=4,
             num_classes=3,
             loss_decode=dict(type='mmslak.CentroidBCELoss', loss_weight=0.4)))
    assert isinstance(head, GaussUPerHead) and isinstance(aux, GaussFCNHead)
    assert isinstance(head.conv_seg, CentroidClassifier) and head.conv_seg.in_channels == 8
    assert isinstance(head.loss_decode, CentroidBCELoss)
    centroids = head.conv_seg.centroids.detach().clone()
    head.init_weights()  # mmseg's Normal init of conv_seg must leave the centroids alone
    assert torch.equal(head.conv_seg.centroids, centroids) and (centroids >= 0).all()
    feats = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8)]
    assert head(feats).shape == (2, 3, 16, 16) and (head(feats) <= 0).all()
    assert aux(feats).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match='centroid per class'):
        GaussFCNHead(in_channels=8, channels=4, num_classes=2, out_channels=1)


def test_gauss_head_learns_to_separate_classes_through_mmseg_losses():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    torch.manual_seed(0)
    head = GaussFCNHead(in_channels=6, channels=6, num_convs=0, concat_input=False,
                        num_classes=3, dropout_ratio=0., gamma=0.5, centroid_std=0.3)
    label = torch.randint(0, 3, (4, 16, 16))
    label[:, :2] = 255  # ignored rows
    means = torch.randn(3, 6) * 2
    feats = means[label.clamp(max=2)].permute(0, 3, 1, 2) + 0.3 * torch.randn(4, 6, 16, 16)
    samples = [SegDataSample(gt_sem_seg=PixelData(data=target[None])) for target in label]
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = head.loss([feats], samples, train_cfg={})['loss_centroid_bce']
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    prediction = head([feats]).argmax(1)
    valid = label != 255
    assert losses[-1] < 0.2 * losses[0]
    assert (prediction[valid] == label[valid]).float().mean() > 0.98
