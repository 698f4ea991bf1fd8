"""The checks of an ONNX export: the graph, and ONNX Runtime against PyTorch on random images."""
import torch

from mmslak.apis import dummy_batch
from .graph_checks import check_depthwise_convs
from .onnx_runtime import OrtRunner
from .parity import argmax_agreement, features_from, match_detections, max_abs_difference

# Accepted differences between ONNX Runtime and PyTorch on the same input (issue 17).
TOLERANCES = dict(atol=1e-4, argmax=0.999, box=1e-2, score=1e-4, mask=0.999)


def _segmentor_checks(model, runner, batch):
    # The graph is whole-image inference; a config's sliding windows would stay in Python.
    metas = [sample.metainfo for sample in batch['data_samples']]
    with torch.no_grad():
        reference = model.encode_decode(batch['inputs'], metas)
    outputs = runner(batch['inputs'])[0]
    return dict(max_abs_difference=max_abs_difference([reference], [outputs]),
                argmax_agreement=argmax_agreement(reference, outputs))


def _detector_checks(model, runner, batch):
    inputs, samples = batch['inputs'], batch['data_samples']
    with torch.no_grad():
        features = model.extract_feat(inputs)
        reference = model.predict(inputs, [sample.clone() for sample in samples])[0]
        outputs = runner(inputs)
        ort_features = tuple(torch.from_numpy(out) for out in outputs)
        with features_from(model, lambda _: ort_features):
            hybrid = model.predict(inputs, [sample.clone() for sample in samples])[0]
    checks = dict(max_abs_difference=max_abs_difference(features, outputs))
    checks.update(match_detections(reference.pred_instances, hybrid.pred_instances))
    return checks


def _failures(checks, tol):
    failed = []
    if not checks['max_abs_difference'] <= tol['atol']:  # NaN fails
        failed.append(f"max abs difference {checks['max_abs_difference']:.3g} > {tol['atol']}")
    if checks.get('argmax_agreement', 1.) < tol['argmax']:
        failed.append(f"arg max agreement {checks['argmax_agreement']:.5f} < {tol['argmax']}")
    if checks.get('unmatched', 0):
        failed.append(f"{checks['unmatched']} detection(s) without a partner")
    if checks.get('max_box_difference', 0.) > tol['box']:
        failed.append(f"box difference {checks['max_box_difference']:.3g} px > {tol['box']}")
    if checks.get('max_score_difference', 0.) > tol['score']:
        failed.append(f"score difference {checks['max_score_difference']:.3g} > {tol['score']}")
    if checks.get('min_mask_agreement', 1.) < tol['mask']:
        failed.append(f"mask agreement {checks['min_mask_agreement']:.5f} < {tol['mask']}")
    return failed


def check_export(model, kind, filename, scope, shapes, threads=None, tolerances=TOLERANCES):
    """Check an export: ``onnx.checker``, the depthwise convolutions, and ONNX Runtime against
    PyTorch on random images of each shape.

    Segmentors: the logits and their arg max, against whole-image inference (``encode_decode``,
    which the graph computes). Detectors: the features, and the detections
    PyTorch computes from ONNX Runtime's features against its own.

    Args:
        model (nn.Module): The model exported, in deploy form.
        kind (str): ``'segmentor'`` or ``'detector_features'``.
        filename (str): The ``.onnx`` file.
        scope (str): ``'mmseg'`` or ``'mmdet'``.
        shapes (Sequence[tuple[int, int]]): Image sizes to check on.
        threads (int, optional): ONNX Runtime intra-op threads. Defaults to None.
        tolerances (dict): See ``TOLERANCES``.

    Returns:
        dict: ``graph`` (depthwise convolution counts) and ``parity`` (one entry per shape).

    Raises:
        ValueError: If a check fails: the export diverges from PyTorch.
    """
    import onnx
    onnx.checker.check_model(filename, full_check=True)
    report = dict(graph=check_depthwise_convs(onnx.load(filename), model.backbone), parity=[])
    runner = OrtRunner(filename, threads)
    check = _segmentor_checks if kind == 'segmentor' else _detector_checks
    for height, width in shapes:
        batch = dummy_batch(model, scope, height, width)
        checks = dict(shape=list(batch['inputs'].shape[2:]), **check(model, runner, batch))
        failed = _failures(checks, tolerances)
        if failed:
            raise ValueError(f'The ONNX export {filename} diverges from PyTorch on a '
                             f'{height} x {width} image: ' + '; '.join(failed))
        report['parity'].append(checks)
    return report
