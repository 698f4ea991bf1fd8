"""demo/image_demo.py: segmentation and detection through the upstream inferencers."""
import mmcv
import pytest
import torch

from .conftest import DET_CONFIG, SEG_CONFIG, load_tool


@pytest.fixture(scope='module')
def demo():
    return load_tool('demo/image_demo.py')


@pytest.fixture
def image(image_dir):
    return f'{image_dir}/0.png'


@pytest.mark.parametrize('config,task', [(SEG_CONFIG, 'segmentation'), (DET_CONFIG, 'detection')])
def test_writes_the_drawn_result(demo, image, config, task, tmp_path, capsys):
    out_file = tmp_path / 'result.png'
    demo.main([image, config, '--out-file', str(out_file)])
    assert f'{task} with' in capsys.readouterr().out
    assert mmcv.imread(str(out_file)).shape == (80, 96, 3)


def test_with_a_checkpoint(demo, image, seg_checkpoint, tmp_path):
    out_file = tmp_path / 'result.png'
    demo.main([image, SEG_CONFIG, seg_checkpoint[0], '--out-file', str(out_file)])
    assert mmcv.imread(str(out_file)).shape == (80, 96, 3)


def test_errors(demo, image, tmp_path, classifier_config):
    out = ['--out-file', str(tmp_path / 'r.png')]
    with pytest.raises(FileNotFoundError, match='Image not found'):
        demo.main([str(tmp_path / 'none.png'), SEG_CONFIG, *out])
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        demo.main([image, SEG_CONFIG, str(tmp_path / 'none.pth'), *out])
    with pytest.raises(ValueError, match='neither an mmseg nor an mmdet'):
        demo.main([image, classifier_config, *out])


def test_help(demo, capsys):
    with pytest.raises(SystemExit):
        demo.main(['--help'])
    assert 'inferencer' in capsys.readouterr().out


def test_a_checkpoint_of_another_model_is_refused(demo, image, other_kernel_checkpoint, tmp_path):
    out_file = tmp_path / 'r.png'
    with pytest.raises(ValueError, match='backbone: the kernel sizes differ') as error:
        demo.main([image, SEG_CONFIG, other_kernel_checkpoint, '--out-file', str(out_file)])
    message = str(error.value)
    assert other_kernel_checkpoint in message and 'pass --no-strict' in message
    assert 'backbone.stages.0.0.large_kernel.vertical.conv.weight (10, 1, 15, 3)' in message
    assert not out_file.exists()


def test_no_strict_loads_what_fits_and_says_so(demo, image, other_kernel_checkpoint, tmp_path,
                                               capsys, mmlogs):
    out_file = tmp_path / 'r.png'
    demo.main([image, SEG_CONFIG, other_kernel_checkpoint, '--out-file', str(out_file),
               '--no-strict'])
    assert '--no-strict: loading only what fits' in mmlogs.text
    assert '--no-strict: tensors that did not fit' in capsys.readouterr().out
    assert mmcv.imread(str(out_file)).shape == (80, 96, 3)


def test_a_checkpoint_is_loaded_with_its_weights(demo, seg_checkpoint):
    inferencer, _ = demo.build_inferencer(SEG_CONFIG, seg_checkpoint[0], 'cpu')
    loaded = inferencer.model.state_dict()
    for key, value in seg_checkpoint[1].state_dict().items():
        assert torch.equal(loaded[key], value), key
