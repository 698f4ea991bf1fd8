"""Run a SLaK segmentation or detection model on one image and save the drawn result.

The config's ``default_scope`` picks the upstream inferencer: ``mmseg.apis.MMSegInferencer`` or
``mmdet.apis.DetInferencer``. Without a checkpoint the model keeps its random initial weights,
which shows that the pipeline runs but predicts nothing meaningful. A checkpoint must fit the
model of the config as a whole (``--no-strict`` loads what fits, with a warning).
"""
import argparse
import os.path as osp

import mmcv

from mmslak.apis import load_downstream_config
from mmslak.checkpoint import load_weights

NO_STRICT = '--no-strict'


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
    parser.add_argument('--no-strict', action='store_true',
                        help='load only the checkpoint tensors that fit the model, with a '
                        'warning naming the others (by default such a checkpoint is refused)')
    return parser.parse_args(argv)


def _checked_inferencer(upstream, checkpoint, strict):
    """A subclass of the ``upstream`` inferencer class that loads ``checkpoint`` through
    :func:`mmslak.checkpoint.load_weights`.

    Upstream loads with ``strict=False``: a checkpoint of another model would leave random
    weights behind a log line, and the demo would draw their predictions.
    """

    class CheckedInferencer(upstream):

        def _load_weights_to_model(self, model, _, cfg):
            loaded = None
            if checkpoint is not None:
                loaded = load_weights(model, checkpoint, strict, opt_out=NO_STRICT)
                # upstream reads the class names from the meta; the weights are in place already
                loaded = dict(loaded, state_dict=model.state_dict())
            super()._load_weights_to_model(model, loaded, cfg)

    return CheckedInferencer


def build_inferencer(config, checkpoint, device, strict=True):
    """The upstream inferencer of ``config``'s kind, and the keyword arguments of its call.

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        ValueError: If the config is neither an mmseg nor an mmdet config, or (``strict``) the
            checkpoint does not fit its model.
    """
    scope = load_downstream_config(config).default_scope
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}')
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = _checked_inferencer(MMSegInferencer, checkpoint, strict)
        return inferencer(model=config, device=device), 'segmentation'
    from mmdet.apis import DetInferencer
    inferencer = _checked_inferencer(DetInferencer, checkpoint, strict)
    return inferencer(model=config, device=device, show_progress=False), 'detection'


def run(image, config, checkpoint, out_file, device='cpu', score_thr=0.3, opacity=0.5,
        strict=True):
    """Infer on ``image``, write the drawn result to ``out_file``, return a summary line."""
    if not osp.isfile(image):
        raise FileNotFoundError(f'Image not found: {image}')
    inferencer, task = build_inferencer(config, checkpoint, device, strict)
    options = dict(pred_score_thr=score_thr) if task == 'detection' else dict(opacity=opacity)
    result = inferencer(image, return_vis=True, **options)
    drawn = result['visualization']
    # DetInferencer returns a list per image; MMSegInferencer unwraps a single image.
    drawn = drawn[0] if isinstance(drawn, list) else drawn
    mmcv.imwrite(drawn[..., ::-1], out_file)  # the inferencers draw in RGB
    weights = checkpoint or 'random weights (no checkpoint given)'
    if checkpoint and not strict:
        weights += ' (--no-strict: tensors that did not fit, if any, keep random weights)'
    return f'{task} with {config} ({weights}) on {image} -> {out_file}'


def main(argv=None):
    """Entry point: ``python demo/image_demo.py IMAGE CONFIG [CHECKPOINT] --out-file OUT``."""
    args = parse_args(argv)
    print(run(args.image, args.config, args.checkpoint, args.out_file, args.device,
              args.score_thr, args.opacity, not args.no_strict))


if __name__ == '__main__':
    main()
