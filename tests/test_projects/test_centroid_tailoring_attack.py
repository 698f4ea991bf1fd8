"""The one-pixel attack: differential evolution and random search, their targets and statistics.

Stand-in models whose vulnerable pixel is known replace trained ones: the end-to-end run of the
tool on a trained Gauss model is in test_centroid_tailoring_end_to_end.py.
"""
import json
from argparse import Namespace

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData
from one_pixel.search import (differential_evolution_search, random_search, search_window,
                              to_candidates)
from one_pixel.stats import plot_success_curves, success_curve, targets_for_power, wilson_interval
from one_pixel.targets import DetectionTargets, SegmentationTargets, near_boundary, perturbed_batch

from .conftest import load_tool

HEIGHT, WIDTH = 12, 16
WEAK = (9, 4)  # (row, column) of the one pixel that can flip the stand-in models


def red_pull(images):
    """How strongly red each image is near ``WEAK``: a weighted sum that decays with distance,
    so a search has a slope to follow, but only a bright red pixel at ``WEAK`` passes 1."""
    rows = torch.arange(HEIGHT)[:, None]
    cols = torch.arange(WIDTH)[None]
    weight = torch.exp(-((rows - WEAK[0])**2 + (cols - WEAK[1])**2) / 2.)
    red = images[:, 0].float() / 255 - images[:, 1:].float().mean(1) / 255
    return (red * weight).sum((1, 2)) / 0.7


class RedPixelSegmentor:
    """Class 1 everywhere, with class 0's logit at ``2 * red_pull``: a flip needs red at WEAK.

    Has what the targets call of an mmseg segmentor: ``data_preprocessor`` (here the identity on
    the stacked images) and ``inference``."""

    def data_preprocessor(self, data, training):
        return dict(inputs=torch.stack(data['inputs']), data_samples=data['data_samples'])

    def inference(self, images, batch_img_metas):
        assert len(batch_img_metas) == len(images)
        pull = red_pull(images)[:, None, None]
        return torch.stack([(2 * pull).expand(-1, HEIGHT, WIDTH),
                            torch.full((len(images), HEIGHT, WIDTH), 2.)], 1)


class RedPixelDetector:
    """One box of class 2, score ``0.9 - 0.5 * red_pull``; a box of class 0 at the same place,
    score ``0.5 * red_pull``."""

    def test_step(self, data):
        images = torch.stack(data['inputs'])
        results = []
        for value, sample in zip(red_pull(images), data['data_samples']):
            value = float(value)
            sample.pred_instances = InstanceData(
                bboxes=torch.tensor([[2., 2., 10., 9.], [2., 2., 10., 9.]]),
                scores=torch.tensor([0.9 - 0.5 * value, 0.5 * value]),
                labels=torch.tensor([2, 0]))
            results.append(sample)
        return results


def margin_of_weak_pixel(candidates):
    """The stand-in segmentor's margin at any target, computed directly: the difference of
    the log-probabilities, that of the logits."""
    batch = perturbed_batch(torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8), candidates)[1:]
    return (2 - 2 * red_pull(batch)).numpy()[:, None]  # the log-probability difference


def seg_sample():
    from mmseg.structures import SegDataSample
    metainfo = dict(img_shape=(HEIGHT, WIDTH), ori_shape=(HEIGHT, WIDTH))
    return dict(inputs=torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8),
                data_samples=SegDataSample(
                    metainfo=metainfo,
                    gt_sem_seg=PixelData(data=torch.ones(1, HEIGHT, WIDTH, dtype=torch.long))))


@pytest.fixture(scope='module')
def tool():
    return load_tool('attack')


def test_de_finds_the_vulnerable_pixel_and_is_reproducible():
    kwargs = dict(height=HEIGHT, width=WIDTH, popsize=30, maxiter=40, seed=[0, 1])
    result = differential_evolution_search(margin_of_weak_pixel, **kwargs)
    x, y, red, green, blue = result.candidate
    assert result.success and result.margin < 0
    assert (y, x) == WEAK and red > 170 and max(green, blue) < 100
    assert 30 < result.evaluations <= 30 * 41 and result.generations >= 1
    assert differential_evolution_search(margin_of_weak_pixel, **kwargs) == result
    other = differential_evolution_search(margin_of_weak_pixel, **{**kwargs, 'seed': [1, 1]})
    assert other.success and other.evaluations != result.evaluations


def test_de_beats_random_search_on_the_same_budget():
    budget = 20 * 31
    de = [differential_evolution_search(margin_of_weak_pixel, HEIGHT, WIDTH, popsize=20,
                                        maxiter=30, seed=seed) for seed in range(6)]
    rand = [random_search(margin_of_weak_pixel, 1, HEIGHT, WIDTH, trials=budget, batch_size=64,
                          seed=seed)[0] for seed in range(6)]
    assert sum(r.success for r in de) >= 4 and sum(r.success for r in rand) <= 1


def test_de_reports_a_failure_with_its_budget_and_stops_on_time():
    def never(candidates):
        return np.ones((len(candidates), 1))

    result = differential_evolution_search(never, HEIGHT, WIDTH, popsize=10, maxiter=3)
    assert not result.success and result.evaluations == 40 and result.margin == 1
    stopped = differential_evolution_search(never, HEIGHT, WIDTH, popsize=10, maxiter=50,
                                            time_budget=1e-9)
    assert stopped.evaluations == 20  # the initial population and one generation
    with pytest.raises(ValueError, match='popsize'):
        differential_evolution_search(never, HEIGHT, WIDTH, popsize=2)


def test_candidates_stay_inside_the_image():
    params = np.array([[WIDTH, HEIGHT, 256, 0, 255.9], [-0.5, 3.7, 12.2, 0, 0]])
    assert to_candidates(params, HEIGHT, WIDTH).tolist() == [[WIDTH - 1, HEIGHT - 1, 255, 0, 255],
                                                             [0, 3, 12, 0, 0]]


def test_segmentation_margins_flip_exactly_with_the_class():
    targets = SegmentationTargets(RedPixelSegmentor(), seg_sample(), 5,
                                  np.random.default_rng(0), batch_size=2)
    assert len(targets) == 5 and (targets.labels == 1).all()
    candidates = np.array([[WEAK[1], WEAK[0], 255, 0, 0], [0, 0, 255, 0, 0],
                           [WEAK[1], WEAK[0], 0, 255, 0]])
    margins = targets.margins(candidates)
    assert margins.shape == (3, 5)
    np.testing.assert_allclose(margins, np.repeat(margin_of_weak_pixel(candidates), 5, 1),
                               atol=1e-6)
    assert (margins[0] < 0).all() and (margins[1:] > 0).all()


def test_detection_margins_flip_with_class_or_threshold():
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import HorizontalBoxes
    sample = DetDataSample(metainfo=dict(img_shape=(HEIGHT, WIDTH), ori_shape=(HEIGHT, WIDTH)))
    # boxes packed as mmdet's test pipelines pack them
    sample.gt_instances = InstanceData(bboxes=HorizontalBoxes(torch.tensor([[2., 2., 10., 10.]])),
                                       labels=torch.tensor([2]))
    image = torch.zeros(3, HEIGHT, WIDTH, dtype=torch.uint8)
    targets = DetectionTargets(RedPixelDetector(), dict(inputs=image, data_samples=sample), 4,
                               np.random.default_rng(0), score_thr=0.3)
    assert len(targets) == 1 and int(targets.labels[0]) == 2
    assert targets.position(0) == (2., 2., 10., 9.)
    targets.metainfo['scale_factor'] = (0.5, 2.)  # the detections are in the original image
    assert targets.position(0) == (1., 4., 5., 18.)
    candidates = np.array([[WEAK[1], WEAK[0], 255, 0, 0], [0, 0, 255, 0, 0]])
    margins = targets.margins(candidates)[:, 0]
    pull = red_pull(perturbed_batch(image, candidates)[1:]).numpy()
    expected = np.log(0.9 - 0.5 * pull) - np.log(np.maximum(0.5 * pull, 0.3))
    np.testing.assert_allclose(margins, expected, atol=1e-6)
    assert margins[0] < 0 < margins[1]


def test_tool_attacks_a_stand_in_through_de_and_random(tool):
    args = Namespace(config='stand-in', checkpoint='none', label='stand-in', method='de',
                     targets_per_image=3, popsize=20, maxiter=40, seed=0,
                     time_budget=None, strategy='rand1bin', mutation=0.5, recombination=1.,
                     trials=200, batch_size=None, device='cpu', search_radius=None,
                     boundary_width=None)
    targets = SegmentationTargets(RedPixelSegmentor(), seg_sample(), 3, np.random.default_rng(0))
    records = tool.attack_image(targets, 0, args)
    assert len(records) == 3 and sum(record['success'] for record in records) >= 2
    assert records == tool.attack_image(targets, 0, args)
    args.method = 'random'
    records = tool.attack_image(targets, 0, args)
    # the random changes are shared by an image's targets: all flip at the same trial or none
    assert len({(record['success'], record['evaluations']) for record in records}) == 1
    summary = tool.summarise(records, args, 'mmseg', 1, 0.5)
    assert summary['num_targets'] == 3 and summary['max_budget'] == 200


def test_random_search_records_the_first_flip_of_each_target():
    def margins(candidates):  # target t flips when the change hits column t
        return np.where(candidates[:, :1] == np.arange(3)[None], -1., 1.)

    results = random_search(margins, 3, HEIGHT, WIDTH, trials=40, batch_size=7, seed=5)
    candidates = np.random.default_rng(5)
    from one_pixel.search import draw_random_candidates
    drawn = draw_random_candidates(40, HEIGHT, WIDTH, candidates)
    for target, result in enumerate(results):
        hits = np.flatnonzero(drawn[:, 0] == target)
        assert result.success == bool(len(hits))
        if len(hits):
            assert result.evaluations == hits[0] + 1 and result.candidate[0] == target


def test_statistics():
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0 and wilson_interval(20, 20)[1] == 1
    with pytest.raises(ValueError):
        wilson_interval(0, 0)
    # 10% vs 20%: the textbook answer is about 200 per group (pooled-variance formula: 199).
    assert 190 <= targets_for_power(0.1) <= 200
    assert targets_for_power(0.25) < targets_for_power(0.1) < targets_for_power(0.05)
    with pytest.raises(ValueError):
        targets_for_power(0.6)
    np.testing.assert_allclose(success_curve([3, None, 10, 1], [1, 5, 10]), [0.25, 0.5, 0.75])


def test_plot_is_written(tmp_path):
    path = plot_success_curves(dict(softmax=[3, None, 10], gauss=[None, 40, None]),
                               str(tmp_path / 'curve.png'), max_budget=100)
    with open(path, 'rb') as file:
        assert file.read(8) == b'\x89PNG\r\n\x1a\n'


def test_tool_draws_saved_runs_pooled_by_label(tool, tmp_path):
    paths = []
    for name, successes in (('a', [True, False]), ('b', [False, False]), ('c', [True, True])):
        run = dict(label='gauss' if name == 'b' else 'softmax', max_budget=50, method='de',
                   targets=[dict(success=s, evaluations=7 if s else 50) for s in successes])
        paths.append(str(tmp_path / f'{name}.json'))
        with open(paths[-1], 'w') as file:
            json.dump(run, file)
    png = str(tmp_path / 'curves.png')
    assert tool.main(['--plot', png, '--plot-with', *paths]) is None
    with open(png, 'rb') as file:
        assert file.read(8) == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(SystemExit):
        tool.parse_args(['config.py'])


def test_tool_refuses_bad_arguments(tool, tmp_path):
    with pytest.raises(SystemExit):
        tool.parse_args(['config.py', 'ckpt.pth', '--popsize', '3'])
    with pytest.raises(SystemExit):
        tool.parse_args(['config.py', 'ckpt.pth', '--plot-with', str(tmp_path / 'none.json')])
    with pytest.raises(FileNotFoundError, match='Checkpoint'):
        tool.main(['config.py', str(tmp_path / 'missing.pth')])


def test_search_window_around_a_pixel_or_a_box():
    assert search_window((4, 9), None, HEIGHT, WIDTH) == (0, 0, WIDTH, HEIGHT)
    assert search_window((4, 9), 2, HEIGHT, WIDTH) == (2, 7, 7, 12)
    assert search_window((0, 0), 0, HEIGHT, WIDTH) == (0, 0, 1, 1)
    assert search_window((2.5, 2.2, 10.1, 9.), 1, HEIGHT, WIDTH) == (1, 1, 12, 10)
    assert search_window((30., 30., 40., 40.), 1, HEIGHT, WIDTH) == (WIDTH - 1, HEIGHT - 1,
                                                                     WIDTH, HEIGHT)
    with pytest.raises(ValueError, match='radius'):
        search_window((4, 9), -1, HEIGHT, WIDTH)


def test_de_searches_only_its_window():
    kwargs = dict(height=HEIGHT, width=WIDTH, popsize=20, maxiter=20, seed=0)
    around = differential_evolution_search(margin_of_weak_pixel, window=(3, 8, 6, 11), **kwargs)
    assert around.success and (around.candidate[1], around.candidate[0]) == WEAK
    elsewhere = differential_evolution_search(margin_of_weak_pixel, window=(10, 0, 16, 4),
                                              **kwargs)
    assert not elsewhere.success and elsewhere.evaluations == 20 * 21
    assert 10 <= elsewhere.candidate[0] < 16 and 0 <= elsewhere.candidate[1] < 4
    with pytest.raises(ValueError, match='window'):
        differential_evolution_search(margin_of_weak_pixel, window=(5, 0, 5, 4), **kwargs)


def test_boundary_targets_are_pixels_near_another_label():
    labels = torch.zeros(6, 8, dtype=torch.long)
    labels[:, 5:] = 3
    assert near_boundary(labels, 1).nonzero()[:, 1].unique().tolist() == [4, 5]
    assert near_boundary(labels, 2).nonzero()[:, 1].unique().tolist() == [3, 4, 5, 6]
    assert not near_boundary(torch.ones(5, 5, dtype=torch.long), 2).any()  # the border is none
    with pytest.raises(ValueError, match='at least 1'):
        near_boundary(labels, 0)
    sample = seg_sample()
    sample['data_samples'].gt_sem_seg.data[0, :, :8] = 0  # the stand-in predicts 1: 0 is wrong
    targets = SegmentationTargets(RedPixelSegmentor(), sample, 100, np.random.default_rng(0),
                                  boundary_width=2)
    assert len(targets) == 2 * HEIGHT and sorted(targets.cols.unique().tolist()) == [8, 9]
    assert targets.position(0) == (int(targets.cols[0]), int(targets.rows[0]))
