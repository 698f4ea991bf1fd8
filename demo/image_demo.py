"""Run a SLaK segmentation or detection model on one image and save the drawn result.

The config's ``default_scope`` picks the upstream inferencer: ``mmseg.apis.MMSegInferencer`` or
``mmdet.apis.DetInferencer``. Without a checkpoint the model keeps its random initial weights,
which shows that the pipeline runs but predicts nothing meaningful.
"""
import argparse
import os.path as osp

import mmcv

from mmslak.analysis import load_downstream_config


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Run an mmseg (segmentation) or mmdet (detection) config with a SLaK '
        'backbone on IMAGE through the upstream inferencer, and save the visualised result.')
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='mmseg or mmdet config')
    parser.add_argument('checkpoint', nargs='?',
                        help='model checkpoint (mmslak/OpenMMLab format; convert official files '
                        'with tools/model_converters/slak2mmslak.py); random weights if omitted')
    parser.add_argument('--out-file', required=True, help='where to write the result (.png)')
    parser.add_argument('--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: lowest score of a drawn box (default: 0.3)')
    parser.add_argument('--opacity', type=float, default=0.5,
                        help='segmentation: opacity of the drawn mask (default: 0.5)')
    return parser.parse_args(argv)


def build_inferencer(config, checkpoint, device):
    """The upstream inferencer of ``config``'s kind, and the keyword arguments of its call.

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        ValueError: If the config is neither an mmseg nor an mmdet config.
    """
    scope = load_downstream_config(config).default_scope
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}')
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(model=config, weights=checkpoint, device=device), 'segmentation'
    from mmdet.apis import DetInferencer
    return DetInferencer(model=config, weights=checkpoint, device=device,
                         show_progress=False), 'detection'


def run(image, config, checkpoint, out_file, device='cpu', score_thr=0.3, opacity=0.5):
    """Infer on ``image``, write the drawn result to ``out_file``, return a summary line."""
    if not osp.isfile(image):
        raise FileNotFoundError(f'Image not found: {image}')
    inferencer, task = build_inferencer(config, checkpoint, device)
    options = dict(pred_score_thr=score_thr) if task == 'detection' else dict(opacity=opacity)
    result = inferencer(image, return_vis=True, **options)
    drawn = result['visualization']
    # DetInferencer returns a list per image; MMSegInferencer unwraps a single image.
    drawn = drawn[0] if isinstance(drawn, list) else drawn
    mmcv.imwrite(drawn[..., ::-1], out_file)  # the inferencers draw in RGB
    weights = checkpoint or 'random weights (no checkpoint given)'
    return f'{task} with {config} ({weights}) on {image} -> {out_file}'


def main(argv=None):
    """Entry point: ``python demo/image_demo.py IMAGE CONFIG [CHECKPOINT] --out-file OUT``."""
    args = parse_args(argv)
    print(run(args.image, args.config, args.checkpoint, args.out_file, args.device,
              args.score_thr, args.opacity))


if __name__ == '__main__':
    main()
