"""The parts of a segmentor or detector that export to ONNX, as modules taking one tensor.

The exported graph takes the preprocessed image batch (normalised, padded as the model's
``data_preprocessor`` does) and returns tensors; reading images, normalising and turning the
outputs into results stay in Python, as in mmdeploy's SDK-less pipeline.
"""
import torch.nn as nn
import torch.nn.functional as F

# The classes whose models are exported end to end (segmentors) or up to the neck (detectors).
SEGMENTORS = ('EncoderDecoder', )
DETECTORS = ('TwoStageDetector', 'SingleStageDetector')


def _class_names(model):
    return [cls.__name__ for cls in type(model).__mro__]


class SegmentorLogits(nn.Module):
    """An mmseg ``EncoderDecoder`` from the preprocessed batch to the decode head's logits,
    resized to the input size as ``predict`` does before its arg max.

    Args:
        segmentor (nn.Module): The segmentor, with its backbone in deploy form.
    """

    def __init__(self, segmentor):
        super().__init__()
        self.segmentor = segmentor

    def forward(self, inputs):
        logits = self.segmentor.decode_head(self.segmentor.extract_feat(inputs))
        return F.interpolate(logits, size=inputs.shape[2:], mode='bilinear',
                             align_corners=self.segmentor.decode_head.align_corners)


class DetectorFeatures(nn.Module):
    """An mmdet detector's backbone and neck: the preprocessed batch to the feature maps.

    The heads after them (anchor decoding, NMS, RoIAlign, the cascade's stages) need mmcv's
    custom ops, which ``torch.onnx`` cannot export faithfully; they stay in PyTorch.

    Args:
        detector (nn.Module): The detector, with its backbone in deploy form.
    """

    def __init__(self, detector):
        super().__init__()
        self.detector = detector

    def forward(self, inputs):
        return tuple(self.detector.extract_feat(inputs))


def export_module(model):
    """The module to export for ``model`` and what it computes.

    Args:
        model (nn.Module): An mmseg ``EncoderDecoder`` or an mmdet two- or single-stage detector.

    Returns:
        tuple[nn.Module, str]: The module, in eval mode (the exporter restores the mode it
        finds, recursively), and ``'segmentor'`` or ``'detector_features'``.

    Raises:
        ValueError: If the model is of another kind (e.g. ``CascadeEncoderDecoder``, DETR-like
            detectors), naming the supported ones.
    """
    names = _class_names(model)
    if type(model).__name__ in SEGMENTORS:
        if not isinstance(model.decode_head, nn.Module) or not hasattr(model.decode_head,
                                                                       'align_corners'):
            raise ValueError(f'Unsupported decode head {type(model.decode_head).__name__}: '
                             'export needs one mmseg decode head (a BaseDecodeHead)')
        return SegmentorLogits(model).eval(), 'segmentor'
    if any(name in DETECTORS for name in names) and hasattr(model, 'extract_feat'):
        return DetectorFeatures(model).eval(), 'detector_features'
    raise ValueError(f'Unsupported model {type(model).__name__}: the export covers mmseg '
                     f'{" / ".join(SEGMENTORS)} (end to end) and mmdet '
                     f'{" / ".join(DETECTORS)} and their subclasses (backbone and neck)')
