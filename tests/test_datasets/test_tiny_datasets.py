import filecmp
import json
import os
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

from mmslak.datasets import (ADE20K_CLASSES, ADE20K_PALETTE, COCO_CLASSES, VOC_CLASSES, make_ade20k,
                             make_coco, make_tiny_datasets, make_voc)

CLI = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'dataset_converters',
               'make_tiny_datasets.py')
NUM_TRAIN, NUM_VAL, SIZE = 48, 16, (128, 128)


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """The three tiny datasets with the default settings."""
    root = str(tmp_path_factory.mktemp('tiny'))
    make_tiny_datasets(root)
    return root


def relative_files(root):
    """All files under ``root``, relative to it, sorted."""
    return sorted(
        osp.relpath(osp.join(folder, name), root) for folder, _, names in os.walk(root)
        for name in names)


def build(scope, dataset_cls, **kwargs):
    """Build ``dataset_cls`` with its transforms looked up in ``scope``."""
    with DefaultScope.overwrite_default_scope(scope):
        return dataset_cls(**kwargs)


def ade20k(root, split, pipeline):
    from mmseg.datasets import ADE20KDataset
    return build('mmseg',
                 ADE20KDataset,
                 data_root=osp.join(root, 'ade20k', 'ADEChallengeData2016'),
                 data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
                 metainfo=dict(classes=ADE20K_CLASSES, palette=ADE20K_PALETTE),
                 reduce_zero_label=True,
                 pipeline=pipeline)


def coco(root, split, pipeline, **kwargs):
    from mmdet.datasets import CocoDataset
    return build('mmdet',
                 CocoDataset,
                 data_root=osp.join(root, 'coco'),
                 ann_file=f'annotations/instances_{split}.json',
                 data_prefix=dict(img=f'{split}/'),
                 metainfo=dict(classes=COCO_CLASSES),
                 pipeline=pipeline,
                 **kwargs)


def voc(root, year, split, pipeline, **kwargs):
    from mmdet.datasets import VOCDataset
    return build('mmdet',
                 VOCDataset,
                 data_root=osp.join(root, 'voc', 'VOCdevkit'),
                 ann_file=f'{year}/ImageSets/Main/{split}.txt',
                 data_prefix=dict(sub_data_root=f'{year}/'),
                 metainfo=dict(classes=VOC_CLASSES),
                 pipeline=pipeline,
                 **kwargs)


SEG_TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(96, 96), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
SEG_TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]


def det_train_pipeline(with_mask):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
        dict(type='Resize', scale=(160, 160), keep_ratio=True),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackDetInputs'),
    ]


def det_test_pipeline(with_mask):
    return [
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(160, 160), keep_ratio=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]


def test_layout(tiny_root):
    files = set(relative_files(tiny_root))
    ade = 'ade20k/ADEChallengeData2016'
    expected = {
        f'{ade}/images/training/ADE_train_00000001.jpg',
        f'{ade}/annotations/training/ADE_train_00000048.png',
        f'{ade}/images/validation/ADE_val_00000016.jpg',
        f'{ade}/annotations/validation/ADE_val_00000001.png',
        'coco/annotations/instances_train2017.json',
        'coco/annotations/instances_val2017.json',
        'coco/train2017/000000000001.jpg',
        'coco/val2017/000000000064.jpg',
        'voc/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt',
        'voc/VOCdevkit/VOC2007/ImageSets/Main/test.txt',
        'voc/VOCdevkit/VOC2007/JPEGImages/000064.jpg',
        'voc/VOCdevkit/VOC2007/Annotations/000001.xml',
        'voc/VOCdevkit/VOC2012/ImageSets/Main/trainval.txt',
        'voc/VOCdevkit/VOC2012/JPEGImages/2012_000048.jpg',
        'voc/VOCdevkit/VOC2012/Annotations/2012_000048.xml',
    }
    assert expected <= files
    counts = {
        f'{ade}/images/training': NUM_TRAIN,
        f'{ade}/annotations/validation': NUM_VAL,
        'coco/train2017': NUM_TRAIN,
        'coco/val2017': NUM_VAL,
        'voc/VOCdevkit/VOC2007/JPEGImages': NUM_TRAIN + NUM_VAL,
        'voc/VOCdevkit/VOC2012/Annotations': NUM_TRAIN,
    }
    for folder, count in counts.items():
        assert len(os.listdir(osp.join(tiny_root, folder))) == count, folder
    label = cv2.imread(osp.join(tiny_root, ade, 'annotations/training/ADE_train_00000001.png'),
                       cv2.IMREAD_UNCHANGED)
    assert label.dtype == np.uint8 and label.shape == SIZE


def test_same_seed_same_bytes(tmp_path):
    kwargs = dict(num_train=3, num_val=2, size=(64, 96), seed=7)
    make_tiny_datasets(str(tmp_path / 'a'), **kwargs)
    make_tiny_datasets(str(tmp_path / 'b'), **kwargs)
    make_tiny_datasets(str(tmp_path / 'c'), **dict(kwargs, seed=8))
    files = relative_files(tmp_path / 'a')
    assert files == relative_files(tmp_path / 'b') == relative_files(tmp_path / 'c')
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'b', files, shallow=False)
    assert not mismatch and not errors
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a', tmp_path / 'c', files, shallow=False)
    assert not errors and len(mismatch) > len(files) // 2


def test_validation_split_does_not_depend_on_training_split(tmp_path):
    make_ade20k(str(tmp_path / 'a'), num_train=2, num_val=2)
    make_ade20k(str(tmp_path / 'b'), num_train=5, num_val=2)
    val = 'ade20k/ADEChallengeData2016/images/validation/ADE_val_00000002.jpg'
    assert filecmp.cmp(tmp_path / 'a' / val, tmp_path / 'b' / val, shallow=False)


def test_smaller_rerun_removes_stale_ade20k_files(tmp_path):
    make_ade20k(str(tmp_path), num_train=4, num_val=1)
    make_ade20k(str(tmp_path), num_train=2, num_val=1)
    root = tmp_path / 'ade20k' / 'ADEChallengeData2016'
    assert len(os.listdir(root / 'images' / 'training')) == 2
    assert len(os.listdir(root / 'annotations' / 'training')) == 2


@pytest.mark.parametrize('kwargs', [
    dict(num_train=0),
    dict(num_val=-1),
    dict(size=(16, 128)),
    dict(size=(128, )),
    dict(seed=-1),
])
@pytest.mark.parametrize('make', [make_ade20k, make_coco, make_voc])
def test_bad_arguments(tmp_path, make, kwargs):
    with pytest.raises(ValueError):
        make(str(tmp_path), **kwargs)
    assert not os.listdir(tmp_path)


def test_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match='cityscapes'):
        make_tiny_datasets(str(tmp_path), which=['cityscapes'])


def test_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [
        CLI,
        str(tmp_path), '--which', 'voc', '--num-train', '2', '--num-val', '1', '--size', '48', '64',
        '--seed', '3'
    ])
    runpy.run_path(CLI, run_name='__main__')
    out = capsys.readouterr().out
    assert 'VOC2007/test' in out and 'VOC2012/trainval' in out
    assert relative_files(tmp_path) == sorted([
        *(f'voc/VOCdevkit/VOC2007/{folder}/00000{i}.{ext}' for i in (1, 2, 3)
          for folder, ext in (('JPEGImages', 'jpg'), ('Annotations', 'xml'))),
        *(f'voc/VOCdevkit/VOC2012/{folder}/2012_00000{i}.{ext}' for i in (1, 2)
          for folder, ext in (('JPEGImages', 'jpg'), ('Annotations', 'xml'))),
        'voc/VOCdevkit/VOC2007/ImageSets/Main/trainval.txt',
        'voc/VOCdevkit/VOC2007/ImageSets/Main/test.txt',
        'voc/VOCdevkit/VOC2012/ImageSets/Main/trainval.txt',
    ])


def test_ade20k_dataset_reads_class_subset(tiny_root):
    train = ade20k(tiny_root, 'training', SEG_TRAIN_PIPELINE)
    assert len(train) == NUM_TRAIN
    assert train.metainfo['classes'] == ADE20K_CLASSES
    assert train.metainfo['palette'] == ADE20K_PALETTE
    for index in range(4):
        labels = set(train[index]['data_samples'].gt_sem_seg.data.unique().tolist())
        assert labels <= {0, 1, 2, 3, 4, 255}
    val = ade20k(tiny_root, 'validation', SEG_TEST_PIPELINE)
    assert len(val) == NUM_VAL
    labels = set()
    for index in range(len(val)):
        sample = val[index]['data_samples']
        assert sample.gt_sem_seg.data.shape == (1, *SIZE)
        labels |= set(sample.gt_sem_seg.data.unique().tolist())
    assert labels == {0, 1, 2, 3, 4, 255}


def test_iou_metric_of_ground_truth_is_perfect(tiny_root):
    from mmseg.evaluation import IoUMetric
    val = ade20k(tiny_root, 'validation', SEG_TEST_PIPELINE)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = val.metainfo
    for index in range(len(val)):
        gt = val[index]['data_samples'].gt_sem_seg.data
        metric.process({}, [dict(pred_sem_seg=dict(data=gt), gt_sem_seg=dict(data=gt))])
    results = metric.evaluate(len(val))
    assert results['mIoU'] == pytest.approx(100)
    assert results['aAcc'] == pytest.approx(100)


def test_coco_json_fields(tiny_root):
    from pycocotools import mask as mask_utils
    with open(osp.join(tiny_root, 'coco', 'annotations', 'instances_train2017.json')) as file:
        content = json.load(file)
    assert [(cat['id'], cat['name']) for cat in content['categories']] == [(1, 'circle'),
                                                                           (2, 'square'),
                                                                           (3, 'triangle')]
    assert all(image['width'] == SIZE[1] and image['height'] == SIZE[0]
               for image in content['images'])
    kinds = set()
    for ann in content['annotations']:
        segmentation = ann['segmentation']
        if isinstance(segmentation, list):
            kinds.add('polygon')
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, *SIZE))
        else:
            kinds.add('rle')
            assert isinstance(segmentation['counts'], str)
            rle = segmentation
        assert ann['iscrowd'] == 0
        assert ann['area'] == pytest.approx(float(mask_utils.area(rle)))
        assert ann['bbox'] == pytest.approx(mask_utils.toBbox(rle).tolist())
    assert kinds == {'polygon', 'rle'}


def test_coco_dataset_reads_masks(tiny_root):
    train = coco(tiny_root,
                 'train2017',
                 det_train_pipeline(with_mask=True),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32))
    val = coco(tiny_root, 'val2017', det_test_pipeline(with_mask=True), test_mode=True)
    assert (len(train), len(val)) == (NUM_TRAIN, NUM_VAL)
    for index in range(4):
        instances = train[index]['data_samples'].gt_instances
        assert len(instances) > 0
        assert set(instances.labels.tolist()) <= {0, 1, 2}
        assert instances.masks.masks.shape[1:] == (160, 160)
        assert all(mask.any() for mask in instances.masks.masks)


def test_coco_metric_of_ground_truth_is_perfect(tiny_root, tmp_path):
    from mmdet.evaluation import CocoMetric
    val = coco(tiny_root, 'val2017', det_test_pipeline(with_mask=True), test_mode=True)
    metric = CocoMetric(ann_file=osp.join(tiny_root, 'coco', 'annotations',
                                          'instances_val2017.json'),
                        metric=['bbox', 'segm'])
    metric.dataset_meta = val.metainfo
    for index in range(len(val)):
        sample = val[index]['data_samples']
        gt = sample.gt_instances
        pred = dict(bboxes=gt.bboxes.tensor,
                    scores=torch.ones(len(gt)),
                    labels=gt.labels,
                    masks=torch.from_numpy(gt.masks.masks.astype(bool)))
        metric.process(
            {}, [dict(img_id=sample.img_id, ori_shape=sample.ori_shape, pred_instances=pred)])
    results = metric.evaluate(len(val))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


@pytest.mark.parametrize('year,split,count', [('VOC2007', 'trainval', NUM_TRAIN),
                                              ('VOC2007', 'test', NUM_VAL),
                                              ('VOC2012', 'trainval', NUM_TRAIN)])
def test_voc_dataset_reads_class_subset(tiny_root, year, split, count):
    dataset = voc(tiny_root,
                  year,
                  split,
                  det_train_pipeline(with_mask=False),
                  filter_cfg=dict(filter_empty_gt=True, min_size=32))
    assert len(dataset) == count
    assert dataset.metainfo['classes'] == VOC_CLASSES
    assert dataset.metainfo['dataset_type'] == year
    for index in range(4):
        instances = dataset[index]['data_samples'].gt_instances
        assert len(instances) > 0
        assert set(instances.labels.tolist()) <= {0, 1, 2}
        boxes = instances.bboxes.tensor
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 160).all()


def test_voc_metric_of_ground_truth_is_perfect(tiny_root):
    from mmdet.evaluation import VOCMetric
    test = voc(tiny_root, 'VOC2007', 'test', det_test_pipeline(with_mask=False), test_mode=True)
    metric = VOCMetric(metric='mAP', eval_mode='11points')
    metric.dataset_meta = test.metainfo
    for index in range(len(test)):
        sample = test[index]['data_samples']
        gt = sample.gt_instances
        sample.pred_instances = InstanceData(bboxes=gt.bboxes.tensor,
                                             scores=torch.ones(len(gt)),
                                             labels=gt.labels)
        metric.process({}, [sample.to_dict()])
    assert metric.evaluate(len(test))['pascal_voc/mAP'] == pytest.approx(1.0)
