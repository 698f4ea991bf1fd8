"""Fuse the SLaK backbone of a trained mmseg / mmdet model into its inference (deploy) form.

The model of CONFIG is built, CHECKPOINT loaded, and ``switch_to_deploy()`` applied to its
backbone (BNs folded, small kernels merged into the large ones). The backbone outputs of the fused
and the training forms are compared on a random input; DST gets the fused checkpoint and
``DST`` with the extension ``.py`` the matching config (``model.backbone.deploy=True``,
``load_from=DST``).
"""
import argparse
import copy
import os.path as osp

import torch

from mmslak import __version__
from mmslak.analysis import plain_ops
from mmslak.apis import build_downstream_model, load_downstream_config, slak_backbone_config
from mmslak.checkpoint import load_weights


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Re-parameterise the SLaK backbone of an mmseg/mmdet model for inference: '
        'load CHECKPOINT into the model of CONFIG, fuse the backbone (switch_to_deploy), check '
        'that its outputs are unchanged on a random input, and save the deploy checkpoint DST '
        'and its config (DST with a .py extension, model.backbone.deploy=True).')
    parser.add_argument('config', help='mmseg or mmdet config whose backbone is mmslak.SLaK')
    parser.add_argument('checkpoint', help='checkpoint of the whole model (training form)')
    parser.add_argument('dst', help='where to write the deploy checkpoint (.pth)')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='size of the random input of the check (default: 224 224)')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest absolute difference of backbone outputs accepted '
                        '(default: 1e-4)')
    parser.add_argument('--allow-non-finite', action='store_true',
                        help='load a checkpoint with NaN or infinite values (refused otherwise)')
    return parser.parse_args(argv)


def max_output_difference(training_form, fused, inputs):
    """Largest absolute difference between the outputs of two backbones on ``inputs``.

    The training form runs its plain ops, each BN apart (see :func:`plain_ops`): fused inference
    kernels that fold its BNs on the fly would hide what ``switch_to_deploy`` got wrong. A NaN
    in any output makes the result NaN (Python's ``max`` would drop it after the first).
    """
    with plain_ops(inputs) as differentiable:
        reference = [out.detach() for out in training_form(differentiable)]
    with torch.no_grad():
        return float(torch.stack([(a - b).abs().max()
                                  for a, b in zip(reference, fused(inputs))]).max())


def deploy_config(cfg, checkpoint):
    """A copy of ``cfg`` that builds the fused backbone and loads ``checkpoint``."""
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.deploy = True
    # The training-form pretrained weights do not fit the fused backbone; DST holds them all.
    cfg.model.backbone.init_cfg = None
    cfg.load_from = checkpoint
    return cfg


def reparameterize(config, checkpoint, dst, shape=(224, 224), atol=1e-4, allow_non_finite=False):
    """Fuse, check and save; return the summary lines.

    Raises:
        FileNotFoundError: If the config, the checkpoint or the folder of ``dst`` does not exist.
        ValueError: If the backbone is not SLaK, the checkpoint does not fit or holds non-finite
            values (unless ``allow_non_finite``), or the fused outputs differ by more than
            ``atol``.
    """
    dst = osp.abspath(dst)
    if not osp.isdir(osp.dirname(dst)):
        raise FileNotFoundError(f'Output folder does not exist: {osp.dirname(dst)}')
    cfg = load_downstream_config(config)
    slak_backbone_config(cfg)
    model = build_downstream_model(cfg)
    load_weights(model, checkpoint, allow_non_finite=allow_non_finite)
    model.eval()
    training_form = copy.deepcopy(model.backbone)
    model.backbone.switch_to_deploy()
    inputs = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    difference = max_output_difference(training_form, model.backbone, inputs)
    if not difference <= atol:  # NaN (broken BN statistics) fails too
        raise ValueError(f'The fused backbone differs from the training form by {difference:.3g} '
                         f'(> --atol {atol}); the checkpoint may hold broken BN statistics')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(source=osp.abspath(checkpoint), config=osp.abspath(config),
                              deploy=True, converted_by=f'mmslak {__version__} reparameterize')),
               dst)
    config_path = osp.splitext(dst)[0] + '.py'
    deploy_config(cfg, dst).dump(config_path)
    return [
        f'Re-parameterised the SLaK backbone of {config} with {checkpoint}',
        f'  max |fused - training| of the backbone outputs on a random 1x3x{shape[0]}x'
        f'{shape[1]} input: {difference:.3g} (<= {atol})',
        f'  deploy checkpoint: {dst}',
        f'  deploy config:     {config_path}',
    ]


def main(argv=None):
    """Entry point: ``python tools/model_converters/reparameterize.py CONFIG CHECKPOINT DST``."""
    args = parse_args(argv)
    print('\n'.join(reparameterize(args.config, args.checkpoint, args.dst, args.shape, args.atol,
                                   args.allow_non_finite)))


if __name__ == '__main__':
    main()
