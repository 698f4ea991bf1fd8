"""A corrupt or missing file of a dataset is named in its error (name_files_in_errors)."""
import os
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.registry import DefaultScope

from mmslak.datasets import NameFilesOnError, make_tiny_datasets, name_files_in_errors

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo',
                       'slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py')


@pytest.fixture
def demo_dataset(tmp_path, monkeypatch):
    """The training set of the ADE20K demo config, on two tiny images (data_root is relative)."""
    monkeypatch.chdir(tmp_path)
    make_tiny_datasets('data/tiny', which=('ade20k', ), num_train=2, num_val=2)
    cfg = Config.fromfile(DEMO_CONFIG)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        from mmseg.registry import DATASETS
        yield DATASETS.build(cfg.train_dataloader.dataset)


def test_a_corrupt_annotation_is_named(demo_dataset):
    path = demo_dataset.get_data_info(1)['seg_map_path']
    with open(path, 'wb') as file:
        file.write(b'\x89PNG but cut short')
    name_files_in_errors(demo_dataset)
    assert demo_dataset[0]['inputs'].shape[0] == 3
    with pytest.raises(ValueError, match='LoadAnnotations failed on the sample') as error:
        demo_dataset[1]
    assert f'seg_map_path={path}' in str(error.value)
    assert 'cannot identify image file' in str(error.value)


def test_a_corrupt_image_is_named(demo_dataset):
    path = demo_dataset.get_data_info(0)['img_path']
    with open(path, 'wb') as file:
        file.write(b'')
    name_files_in_errors(demo_dataset)
    with pytest.raises(ValueError, match=f'LoadImageFromFile failed .*img_path={path}'):
        demo_dataset[0]


def test_a_missing_file_stays_file_not_found(demo_dataset):
    path = demo_dataset.get_data_info(1)['seg_map_path']
    os.remove(path)
    name_files_in_errors(demo_dataset)
    with pytest.raises(FileNotFoundError, match=f'seg_map_path={path}'):
        demo_dataset[1]


def test_wrapped_datasets_and_repeated_calls(demo_dataset):
    for wrapped in (ConcatDataset([demo_dataset, demo_dataset]),
                    RepeatDataset(demo_dataset, times=2)):
        assert name_files_in_errors(wrapped) is wrapped
    transforms = demo_dataset.pipeline.transforms
    assert all(isinstance(t, NameFilesOnError) for t in transforms)
    assert not any(isinstance(t.transform, NameFilesOnError) for t in transforms)
    assert 'NameFilesOnError(LoadImageFromFile(' in repr(transforms[0])


def test_results_without_files_raise_the_original_error():
    def broken(results):
        raise KeyError('gt_seg_map')

    with pytest.raises(KeyError, match='gt_seg_map'):
        NameFilesOnError(broken)(dict(img_shape=(4, 4)))


def test_the_tools_runner_names_the_file(demo_dataset):
    """tools/train.py and tools/test.py build their data loaders through ToolRunner."""
    from mmslak.engine import ToolRunner
    path = demo_dataset.get_data_info(0)['seg_map_path']
    with open(path, 'wb') as file:
        file.write(b'not a png')
    cfg = Config.fromfile(DEMO_CONFIG)
    loader_cfg = dict(cfg.train_dataloader, batch_size=1, num_workers=0,
                      persistent_workers=False, sampler=dict(type='DefaultSampler', shuffle=False))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        loader = ToolRunner.build_dataloader(loader_cfg)
    with pytest.raises(ValueError, match=f'seg_map_path={path}'):
        next(iter(loader))
