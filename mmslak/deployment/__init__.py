"""Deployment: SLaK segmentors and detectors exported to ONNX, checked with ONNX Runtime.

onnx and onnxruntime come with the ``deploy`` extra (``pip install "mmslak[deploy]"``); they are
imported only where used.
"""
from .export_checks import TOLERANCES, check_export
from .exporter import export_model, load_for_export
from .graph_checks import check_depthwise_convs, depthwise_convs, expected_depthwise_kernels
from .onnx_export import export_onnx
from .onnx_runtime import OrtRunner, ort_session
from .ort_benchmark import onnx_runtime_twin
from .parity import argmax_agreement, features_from, match_detections, max_abs_difference
from .traceable import prepare_for_export, traceable
from .wrappers import DetectorFeatures, SegmentorLogits, export_module

__all__ = [
    'DetectorFeatures', 'OrtRunner', 'SegmentorLogits', 'TOLERANCES', 'argmax_agreement',
    'check_depthwise_convs', 'check_export', 'depthwise_convs', 'expected_depthwise_kernels',
    'export_model', 'export_module', 'export_onnx', 'features_from', 'load_for_export',
    'match_detections', 'max_abs_difference', 'onnx_runtime_twin', 'ort_session',
    'prepare_for_export', 'traceable'
]
