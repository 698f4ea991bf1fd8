"""What a one-pixel attack attacks: pixels of a segmentation, objects of a detection.

Each class takes a model, one test sample (the test pipeline's ``inputs`` and ``data_samples``)
and chooses its targets on the clean image; :meth:`margins` then scores a batch of one-pixel
changes ``(x, y, r, g, b)`` in the raw ``uint8`` image (before the data preprocessor normalises
it). Every forward pass carries the clean image first, and a change is measured against the
clean prediction of that same pass, so kernels chosen by batch size cannot pass for an attack.

A margin compares the target's clean-class confidence with the best competitor's (softmax
probabilities for a softmax classifier, ``exp(-gamma * ||phi - z_c||^2)`` for a Gauss one, a
detection's score), as the difference of their logarithms: negative exactly when the confidence
difference is, once the target has flipped, and it keeps its resolution where a probability
rounds to 1 (a search then still has a slope to follow).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F

_TINY = 1e-12  # floor of a score before its logarithm (a missing detection scores 0)


def perturbed_batch(image: torch.Tensor, candidates: np.ndarray) -> torch.Tensor:
    """The clean image followed by one copy per candidate with its pixel recoloured.

    Args:
        image (Tensor): ``3 x H x W`` ``uint8`` image.
        candidates (ndarray): ``(S, 5)`` int64 ``(x, y, r, g, b)``.

    Returns:
        Tensor: ``(S + 1) x 3 x H x W`` ``uint8`` batch, the clean image first.
    """
    candidates = torch.as_tensor(candidates, dtype=torch.long)
    batch = image[None].repeat(len(candidates) + 1, 1, 1, 1)
    rows = torch.arange(1, len(candidates) + 1)
    batch[rows, :, candidates[:, 1], candidates[:, 0]] = candidates[:, 2:].to(torch.uint8)
    return batch


def _chunks(candidates, batch_size):
    for start in range(0, len(candidates), batch_size or len(candidates) or 1):
        yield candidates[start:start + (batch_size or len(candidates))]


def near_boundary(labels: torch.Tensor, width: int) -> torch.Tensor:
    """Pixels with another label within ``width`` pixels (a ``(2 width + 1)`` square).

    Args:
        labels (Tensor): ``H x W`` integer label map.
        width (int): Distance, at least 1.

    Returns:
        Tensor: ``H x W`` bool mask.
    """
    if width < 1:
        raise ValueError(f'the boundary width must be at least 1, got {width}')
    # the image border is no boundary: pad with the edge's own labels
    padded = F.pad(labels[None, None].double(), [width] * 4, mode='replicate')
    highest = F.max_pool2d(padded, 2 * width + 1, stride=1)
    lowest = -F.max_pool2d(-padded, 2 * width + 1, stride=1)
    return (highest != lowest)[0, 0]


class SegmentationTargets:
    """Correctly classified pixels of one image, attacked through an mmseg segmentor.

    Args:
        model (BaseSegmentor): The segmentor, in eval mode.
        sample (dict): The test pipeline's output (``inputs``, ``data_samples`` with
            ``gt_sem_seg``).
        num_targets (int): Targets to draw at most, uniform among the correct pixels.
        rng (numpy.random.Generator): The random stream of the targets.
        ignore_index (int): Label of pixels that are never targets. Defaults to 255.
        batch_size (int, optional): Candidates per forward pass at most (the clean image rides
            along with each pass). Defaults to None (all at once).
        device (str): Device of the forward passes. Defaults to ``'cpu'``.
        boundary_width (int, optional): Draw only among the correct pixels within this many
            pixels (Chebyshev) of another label of the ground truth, where one pixel's change
            matters most; the choice depends on the labels alone, so it is the same rule for
            any model. Defaults to None (any correct pixel).
    """

    def __init__(self, model, sample, num_targets, rng, ignore_index=255, batch_size=None,
                 device='cpu', boundary_width=None):
        from mmseg.structures import SegDataSample

        from mmslak.models.heads import CentroidClassifier
        self.model = model
        self.image = sample['inputs']
        self.metainfo = sample['data_samples'].metainfo
        self.sample_class = SegDataSample
        self.batch_size = batch_size
        self.device = device
        head = getattr(model, 'decode_head', None)
        self.gauss = isinstance(getattr(head, 'conv_seg', None), CentroidClassifier)
        _, height, width = self.image.shape
        self.height, self.width = height, width
        gt = sample['data_samples'].gt_sem_seg.data[0].cpu()
        clean_pred = self._logits(self.image[None])[0].argmax(0).cpu()
        if clean_pred.shape != gt.shape:
            raise ValueError(f'the prediction is {tuple(clean_pred.shape)} but the label '
                             f'{tuple(gt.shape)}; load the annotations after resizing in the test '
                             'pipeline, as the mmseg configs do')
        correct = (clean_pred == gt) & (gt != ignore_index)
        if boundary_width is not None:
            correct &= near_boundary(gt, boundary_width)
        correct = correct.flatten()
        candidates = torch.nonzero(correct).flatten().numpy()
        chosen = rng.choice(candidates, size=min(num_targets, len(candidates)), replace=False)
        self.rows = torch.as_tensor(chosen // gt.shape[1])
        self.cols = torch.as_tensor(chosen % gt.shape[1])
        self.labels = clean_pred[self.rows, self.cols]

    def __len__(self):
        return len(self.rows)

    def describe(self, target):
        """The target as a JSON-friendly dict."""
        return dict(row=int(self.rows[target]), col=int(self.cols[target]),
                    label=int(self.labels[target]))

    def position(self, target):
        """``(x, y)`` of the target pixel in the network input."""
        return int(self.cols[target]), int(self.rows[target])

    @torch.no_grad()
    def _logits(self, images):
        """The segmentor's ``(N, C, H, W)`` logits of ``uint8`` images at the input size.

        ``inference`` is what ``test_step`` runs before its post-processing (a resize of every
        map to the original image size and a full-map arg max), which would cost twice the
        network here and which the targets, pixels of the input, do not need.
        """
        samples = [self.sample_class(metainfo=self.metainfo) for _ in range(len(images))]
        data = self.model.data_preprocessor(
            dict(inputs=list(images.to(self.device)), data_samples=samples), False)
        return self.model.inference(data['inputs'],
                                    [sample.metainfo for sample in data['data_samples']])

    def margins(self, candidates: np.ndarray) -> np.ndarray:
        """``(S, T)`` margins of the targets under the candidates.

        Args:
            candidates (ndarray): ``(S, 5)`` int64 ``(x, y, r, g, b)``.
        """
        out = []
        targets = torch.arange(len(self))
        for chunk in _chunks(candidates, self.batch_size):
            logits = self._logits(perturbed_batch(self.image, chunk))[:, :, self.rows,
                                                                      self.cols].cpu().float()
            # Log-confidences: a Gauss head's logits are already; softmax's need normalising.
            log_conf = logits if self.gauss else logits.log_softmax(1)
            # The clean class in this very pass.
            clean = log_conf[0].argmax(0)
            own = log_conf[1:, clean, targets]
            others = log_conf[1:].clone()
            others[:, clean, targets] = -math.inf
            out.append((own - others.max(1).values).numpy())
        return np.concatenate(out).astype(np.float64)


class DetectionTargets:
    """Correctly detected objects of one image, attacked through an mmdet detector.

    A target is a clean detection with score at least ``score_thr`` that matches a ground-truth
    box of its class (IoU at least ``iou_thr``; the highest-scoring one per ground truth), and
    that no detection of another class overlapping it outscores. Under a change its margin is
    the log of the best score of a detection of its class overlapping it (IoU at least
    ``iou_thr``) minus the log of the larger of ``score_thr`` and the best score of an
    overlapping detection of another class: negative once the box's class flips or its score
    falls below the threshold.

    Args:
        model (BaseDetector): The detector, in eval mode.
        sample (dict): The test pipeline's output (``inputs``, ``data_samples`` with
            ``gt_instances``, in the coordinates of the original image, as mmdet's test
            pipelines load them after resizing).
        num_targets (int): Targets to draw at most, uniform among the correct detections.
        rng (numpy.random.Generator): The random stream of the targets.
        score_thr (float): The detection threshold.
        iou_thr (float): Overlap of a match. Defaults to 0.5.
        batch_size (int, optional): Candidates per forward pass at most. Defaults to None.
        device (str): Device of the forward passes. Defaults to ``'cpu'``.
    """

    def __init__(self, model, sample, num_targets, rng, score_thr, iou_thr=0.5, batch_size=None,
                 device='cpu'):
        from mmdet.structures import DetDataSample
        from mmdet.structures.bbox import bbox_overlaps, get_box_tensor
        self.overlaps = bbox_overlaps
        self.model = model
        self.image = sample['inputs']
        self.metainfo = sample['data_samples'].metainfo
        self.sample_class = DetDataSample
        self.score_thr = score_thr
        self.iou_thr = iou_thr
        self.batch_size = batch_size
        self.device = device
        _, self.height, self.width = self.image.shape
        self.unstable_passes = 0
        clean = self._forward(self.image[None])[0]
        gt = sample['data_samples'].gt_instances
        gt_boxes = get_box_tensor(gt.bboxes).float()  # mmdet packs them as a box type
        keep = clean.scores >= score_thr
        boxes, labels, scores = clean.bboxes[keep], clean.labels[keep], clean.scores[keep]
        chosen = []
        if len(boxes) and len(gt_boxes):
            iou = bbox_overlaps(gt_boxes, boxes)
            match = (iou >= iou_thr) & (gt.labels[:, None] == labels[None])
            for row in match:
                if row.any():
                    best = int(torch.where(row, scores, scores.new_tensor(-1.)).argmax())
                    if best not in chosen and self._margin(clean, boxes[best], labels[best]) >= 0:
                        chosen.append(best)
        chosen = rng.permutation(np.array(chosen, dtype=np.int64))[:num_targets]
        self.boxes = boxes[chosen].reshape(-1, 4)
        self.labels = labels[chosen]
        self.scores = scores[chosen]

    def __len__(self):
        return len(self.labels)

    def describe(self, target):
        """The target as a JSON-friendly dict."""
        return dict(box=[round(float(v), 2) for v in self.boxes[target]],
                    label=int(self.labels[target]), score=float(self.scores[target]))

    def position(self, target):
        """``(x0, y0, x1, y1)`` of the target's box in the network input (the detections are in
        the original image's coordinates)."""
        scale_x, scale_y = self.metainfo.get('scale_factor', (1., 1.))
        x0, y0, x1, y1 = (float(v) for v in self.boxes[target])
        return x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y

    @torch.no_grad()
    def _forward(self, images):
        samples = [self.sample_class(metainfo=self.metainfo) for _ in range(len(images))]
        results = self.model.test_step(
            dict(inputs=list(images.to(self.device)), data_samples=samples))
        return [result.pred_instances.cpu() for result in results]

    def _scores(self, detections, box, label):
        """Best score of the overlapping detections of the class and of the other classes."""
        if len(detections.bboxes) == 0:
            return 0., 0.
        overlapping = self.overlaps(box[None], detections.bboxes)[0] >= self.iou_thr
        same = overlapping & (detections.labels == label)
        other = overlapping & (detections.labels != label)
        best_same = float(detections.scores[same].max()) if same.any() else 0.
        best_other = float(detections.scores[other].max()) if other.any() else 0.
        return best_same, best_other

    def _margin(self, detections, box, label):
        same, other = self._scores(detections, box, label)
        return math.log(max(same, _TINY)) - math.log(max(other, self.score_thr, _TINY))

    def _counterpart(self, detections, box, label):
        """The box of the class in ``detections`` that overlaps ``box`` most, or None."""
        same = detections.labels == label
        if not same.any():
            return None
        iou = self.overlaps(box[None], detections.bboxes[same])[0]
        best = int(iou.argmax())
        return detections.bboxes[same][best] if iou[best] >= self.iou_thr else None

    def margins(self, candidates: np.ndarray) -> np.ndarray:
        """``(S, T)`` margins of the targets under the candidates.

        In each pass a target is the clean pass's detection of its class that overlaps it most;
        where the clean pass has none, or another class outscores it there, the pass counts no
        flip for that target (its margins there are 0, and ``unstable_passes`` grows).

        Args:
            candidates (ndarray): ``(S, 5)`` int64 ``(x, y, r, g, b)``.
        """
        out = []
        for chunk in _chunks(candidates, self.batch_size):
            detections = self._forward(perturbed_batch(self.image, chunk))
            values = np.zeros((len(chunk), len(self)))
            for target in range(len(self)):
                label = self.labels[target]
                box = self._counterpart(detections[0], self.boxes[target], label)
                if box is None or self._margin(detections[0], box, label) < 0:
                    self.unstable_passes += 1
                    continue
                values[:, target] = [self._margin(d, box, label) for d in detections[1:]]
            out.append(values)
        return np.concatenate(out)
