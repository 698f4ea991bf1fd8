"""Export a SLaK segmentor or detector to ONNX (deploy form) and check it with ONNX Runtime.

Segmentors (mmseg ``EncoderDecoder``) export end to end, from the preprocessed image batch to
the logits at input size; detectors export their backbone and neck (the heads need mmcv ops
that ``torch.onnx`` cannot export faithfully and stay in PyTorch). The backbone is switched to
its deploy form first. The export is checked with ``onnx.checker``, by counting its depthwise
convolutions, and against PyTorch on random images; a divergence fails the command.

Example::

    python tools/deployment/export.py \
        configs/segmentation/slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py iter_160000.pth \
        --out work_dirs/onnx/slak-t_upernet --shape 512 512 --dynamic
"""
import argparse
import sys

from mmengine.config import DictAction

from mmslak.deployment import TOLERANCES, export_model


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Export the SLaK segmentor or detector of CONFIG with CHECKPOINT to ONNX '
        '(backbone in deploy form) and check it against PyTorch with ONNX Runtime (CPU).')
    parser.add_argument('config', help='mmseg or mmdet config whose backbone is mmslak.SLaK')
    parser.add_argument('checkpoint', help='whole-model checkpoint (training or deploy form)')
    parser.add_argument('--out', required=True, help='output folder (created)')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='image size of the export and its check (default: 512 512)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width (checked on a second size too)')
    parser.add_argument('--threads', type=int, default=None,
                        help='ONNX Runtime threads of the check (default: its own choice)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default=None,
                        help='override config settings, key=value (e.g. '
                        'model.test_cfg.rcnn.score_thr=0 so that an untrained detector has '
                        'detections to compare)')
    return parser.parse_args(argv)


def summary(report):
    """The lines printed for an export report."""
    graph = report['graph']
    lines = [
        f"Exported {report['config']} ({report['kind']}, "
        f"{'dynamic' if report['dynamic'] else 'static'} shape) to {report['onnx']}",
        f"  onnx.checker: passed; depthwise convs: {graph['depthwise_convs']} in "
        f"{graph['blocks']} blocks ({graph['per_block']:g} per block, kernels "
        f"{', '.join(graph['kernels'])})",
    ]
    for checks in report['parity']:
        line = (f"  {checks['shape'][0]}x{checks['shape'][1]}: max |ORT - PyTorch| "
                f"{checks['max_abs_difference']:.3g} (<= {TOLERANCES['atol']})")
        if 'argmax_agreement' in checks:
            line += f", arg max agreement {checks['argmax_agreement']:.4%}"
        if 'detections' in checks:
            line += (f"; detections from ORT features: {checks['detections']}, unmatched "
                     f"{checks['unmatched']}, max box diff {checks['max_box_difference']:.3g} px,"
                     f" max score diff {checks['max_score_difference']:.3g}")
            if 'min_mask_agreement' in checks:
                line += f", worst mask agreement {checks['min_mask_agreement']:.4%}"
        lines.append(line)
        if checks.get('detections') == 0:
            lines.append('  no detection above the score threshold: only the features were '
                         'compared (lower it with --cfg-options, e.g. '
                         'model.test_cfg.rcnn.score_thr=0)')
    return lines


def main(argv=None):
    """Entry point: ``python tools/deployment/export.py CONFIG CHECKPOINT --out DIR``."""
    args = parse_args(argv)
    try:
        report = export_model(args.config, args.checkpoint, args.out, tuple(args.shape),
                              args.dynamic, args.threads, args.cfg_options)
    except (FileNotFoundError, ValueError, ImportError) as error:
        sys.exit(f'export failed: {error}')
    print('\n'.join(summary(report)))


if __name__ == '__main__':
    main()
