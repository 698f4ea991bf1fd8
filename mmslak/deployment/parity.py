"""Comparisons of ONNX Runtime outputs with the PyTorch model's on the same inputs."""
from contextlib import contextmanager

import numpy as np
import torch


def max_abs_difference(reference, outputs):
    """The largest absolute difference over pairs of arrays; NaN anywhere gives NaN.

    Args:
        reference (Sequence[Tensor | np.ndarray]): The PyTorch outputs.
        outputs (Sequence[Tensor | np.ndarray]): The ONNX Runtime outputs, same shapes.

    Returns:
        float: The difference.

    Raises:
        ValueError: If the numbers or shapes of the outputs differ.
    """
    reference = [np.asarray(torch.as_tensor(ref).cpu()) for ref in reference]
    outputs = [np.asarray(out) for out in outputs]
    shapes = [ref.shape for ref in reference], [out.shape for out in outputs]
    if shapes[0] != shapes[1]:
        raise ValueError(f'Output shapes differ: PyTorch {shapes[0]}, ONNX Runtime {shapes[1]}')
    pairs = zip(reference, outputs)
    return float(max(np.abs(ref.astype(np.float64) - out).max() for ref, out in pairs))


def argmax_agreement(reference, outputs):
    """The fraction of pixels whose arg max over classes (dim 1) is the same.

    Args:
        reference (Tensor | np.ndarray): ``(N, K, H, W)`` PyTorch logits.
        outputs (np.ndarray): ``(N, K, H, W)`` ONNX Runtime logits.

    Returns:
        float: In [0, 1].
    """
    reference = np.asarray(torch.as_tensor(reference).cpu())
    return float((reference.argmax(1) == np.asarray(outputs).argmax(1)).mean())


@contextmanager
def features_from(model, extract_feat):
    """``model.extract_feat`` replaced for the duration, e.g. by the ONNX Runtime graph.

    Args:
        model (nn.Module): An mmdet detector (or mmseg segmentor).
        extract_feat (Callable[[Tensor], tuple[Tensor]]): Computes the features from the batch.

    Yields:
        nn.Module: ``model``, whose ``predict`` now takes its features from ``extract_feat``.
    """
    model.extract_feat = extract_feat
    try:
        yield model
    finally:
        del model.extract_feat


def _box_iou(a, b):
    """IoU of each box of ``a`` (M, 4) with each of ``b`` (N, 4), ``x1 y1 x2 y2``."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area[:, None] + area_b[None] - inter).clamp(min=1e-6)


def match_detections(reference, outputs):
    """Match the detections of two ``InstanceData`` results one to one and compare them.

    Each reference detection takes the unmatched detection of the same label whose box
    overlaps it most (IoU > 0.5), in the reference's order (descending score).

    Args:
        reference (InstanceData): The PyTorch detections (``bboxes``, ``scores``, ``labels``,
            optionally ``masks``).
        outputs (InstanceData): The detections computed from the ONNX Runtime features.

    Returns:
        dict: ``detections`` (reference count), ``unmatched`` (detections of either side
        without a partner), ``max_box_difference`` (pixels), ``max_score_difference`` and, with
        masks, ``min_mask_agreement`` (fraction of equal mask pixels, worst detection).
    """
    ref_boxes, out_boxes = reference.bboxes.float(), outputs.bboxes.float()
    iou = _box_iou(ref_boxes, out_boxes) if len(ref_boxes) and len(out_boxes) else None
    taken, pairs = set(), []
    for i in range(len(ref_boxes)):
        if iou is None:
            break
        candidates = (outputs.labels == reference.labels[i]) & (iou[i] > 0.5)
        candidates[list(taken)] = False
        if candidates.any():
            j = int(torch.where(candidates, iou[i], -1.).argmax())
            taken.add(j)
            pairs.append((i, j))
    ref_index = torch.tensor([i for i, _ in pairs], dtype=torch.long)
    out_index = torch.tensor([j for _, j in pairs], dtype=torch.long)
    summary = dict(
        detections=len(ref_boxes),
        unmatched=len(ref_boxes) + len(out_boxes) - 2 * len(pairs),
        max_box_difference=float((ref_boxes[ref_index] - out_boxes[out_index]).abs().max())
        if pairs else 0.,
        max_score_difference=float((reference.scores[ref_index] -
                                    outputs.scores[out_index]).abs().max()) if pairs else 0.)
    if 'masks' in reference and pairs:
        equal = reference.masks[ref_index] == outputs.masks[out_index]
        summary['min_mask_agreement'] = float(equal.flatten(1).float().mean(1).min())
    return summary
