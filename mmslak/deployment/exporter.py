"""Export a SLaK segmentor or detector from a config and a checkpoint, and check the export."""
import json
import logging
import os
import os.path as osp

from mmengine.logging import print_log

from mmslak.apis import (build_downstream_model, dummy_batch, load_downstream_config,
                         slak_backbone_config)
from mmslak.checkpoint import load_weights, read_checkpoint, recognise
from mmslak.models.backbones.slak_checkpoint import is_deploy_form
from .export_checks import check_export
from .onnx_export import export_onnx
from .traceable import prepare_for_export, traceable
from .wrappers import export_module

FILENAMES = {'segmentor': 'end2end.onnx', 'detector_features': 'backbone_neck.onnx'}


def load_for_export(config, checkpoint, cfg_options=None):
    """Build the model of ``config``, load ``checkpoint`` strictly and fuse its backbone.

    A training-form checkpoint is loaded into the training form and switched with
    ``switch_to_deploy()``; a deploy-form one (``reparameterize.py``) into the deploy form.

    Args:
        config (str): mmseg or mmdet config with an ``mmslak.SLaK`` backbone.
        checkpoint (str): Whole-model checkpoint.
        cfg_options (dict, optional): Overrides merged into the config (``--cfg-options``).
            Defaults to None.

    Returns:
        tuple[nn.Module, Config]: The model in eval and deploy form, and the config.

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        ValueError: If the backbone is not SLaK, or the checkpoint does not fit the model or
            holds non-finite values.
    """
    cfg = load_downstream_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    backbone = slak_backbone_config(cfg)
    loaded = read_checkpoint(checkpoint)  # read once: for its form, then to load
    # a checkpoint written by reparameterize.py holds the branches fused
    in_deploy_form = is_deploy_form(recognise(loaded).state_dict)
    backbone.deploy = bool(backbone.get('deploy')) or in_deploy_form
    backbone.init_cfg = None  # the checkpoint holds every weight
    model = build_downstream_model(cfg)
    load_weights(model, checkpoint, checkpoint=loaded)
    return prepare_for_export(model), cfg


def export_model(config, checkpoint, out_dir, shape=(512, 512), dynamic=False, threads=None,
                 cfg_options=None):
    """Export the model of ``config`` with ``checkpoint`` to ONNX in deploy form and check it.

    Args:
        config (str): mmseg or mmdet config with an ``mmslak.SLaK`` backbone.
        checkpoint (str): Whole-model checkpoint (training or deploy form).
        out_dir (str): Folder for the ``.onnx`` file and ``export_report.json`` (created).
        shape (tuple[int, int]): Image size traced (and checked). Defaults to (512, 512).
        dynamic (bool): Dynamic batch, height and width; the check then also runs on a second
            size. Defaults to False.
        threads (int, optional): ONNX Runtime threads of the check. Defaults to None.
        cfg_options (dict, optional): Overrides merged into the config, e.g. a lower
            ``model.test_cfg.rcnn.score_thr`` so that an untrained detector has detections to
            compare. Defaults to None.

    Returns:
        dict: The report: ``onnx`` (path), ``kind``, ``dynamic``, ``graph``, ``parity``.
    """
    model, cfg = load_for_export(config, checkpoint, cfg_options)
    module, kind = export_module(model)
    os.makedirs(out_dir, exist_ok=True)
    filename = osp.join(out_dir, FILENAMES[kind])
    batch = dummy_batch(model, cfg.default_scope, *shape)
    with traceable(model):
        try:
            export_onnx(module, batch['inputs'], filename, dynamic=dynamic)
        except Exception as error:
            raise ValueError(f'{type(model).__name__} with {type(_head(model)).__name__} did '
                             f'not export to ONNX ({type(error).__name__}: {error}); its head '
                             'may use ops with no ONNX symbolic') from error
    shapes = [tuple(shape)] + ([(shape[0] + 32, shape[1] + 64)] if dynamic else [])
    test_mode = (getattr(model, 'test_cfg', None) or {}).get('mode', 'whole')
    if kind == 'segmentor' and test_mode != 'whole':
        print_log(f'{config} infers in {test_mode!r} mode; the ONNX graph is '
                  'whole-image inference: run it per window for sliding-window results',
                  logger='current', level=logging.WARNING)
    report = dict(onnx=filename, kind=kind, dynamic=dynamic, config=config,
                  checkpoint=checkpoint, **check_export(model, kind, filename, cfg.default_scope,
                                                        shapes, threads))
    with open(osp.join(out_dir, 'export_report.json'), 'w') as file:
        json.dump(report, file, indent=2, default=str)
    return report


def _head(model):
    return getattr(model, 'decode_head', None) or getattr(model, 'neck', None) or model
