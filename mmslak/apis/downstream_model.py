"""Loading and building the mmseg / mmdet configs that use a SLaK backbone."""
import importlib
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from .tool_config import task_of

# The default scope of a config, and the data sample class its models expect.
DOWNSTREAM_SCOPES = {
    'mmseg': ('mmseg.structures', 'SegDataSample'),
    'mmdet': ('mmdet.structures', 'DetDataSample'),
}
SLAK_TYPES = ('mmslak.SLaK', 'SLaK')


def load_downstream_config(filename):
    """Read an mmseg or mmdet config (importing its ``custom_imports``) and set its scope.

    Args:
        filename (str): Path of the config file.

    Returns:
        Config: The config, with ``default_scope`` set as the current mmengine scope.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the config is neither an mmseg nor an mmdet one.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Config file not found: {filename}')
    cfg = Config.fromfile(filename)
    task_of(cfg)
    if 'model' not in cfg:
        raise ValueError(f'{filename} has no model section')
    init_default_scope(cfg.default_scope)
    return cfg


def slak_backbone_config(cfg):
    """The ``model.backbone`` section of ``cfg``, checked to be a SLaK backbone.

    Args:
        cfg (Config): A config read by :func:`load_downstream_config`.

    Returns:
        ConfigDict: The backbone section.

    Raises:
        ValueError: If the model has no backbone or its backbone is not ``mmslak.SLaK``.
    """
    backbone = cfg.model.get('backbone')
    if backbone is None or backbone.get('type') not in SLAK_TYPES:
        found = None if backbone is None else backbone.get('type')
        raise ValueError(f"The config's backbone is {found!r}, not a SLaK backbone: use a config "
                         "with model.backbone.type='mmslak.SLaK' (and "
                         "custom_imports=dict(imports=['mmslak']))")
    return backbone


def build_downstream_model(cfg):
    """Build ``cfg.model`` in the config's scope (weights as initialised, no checkpoint).

    Args:
        cfg (Config): A config read by :func:`load_downstream_config`.

    Returns:
        nn.Module: The segmentor or detector.
    """
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model)


def dummy_batch(model, scope, height, width, seed=0):
    """A preprocessed one-image batch of random pixels, ready for ``model(..., mode='tensor')``.

    Args:
        model (nn.Module): A segmentor or detector with a ``data_preprocessor``.
        scope (str): ``'mmseg'`` or ``'mmdet'``: picks the data sample class.
        height (int): Image height.
        width (int): Image width.
        seed (int): Seed of the random pixels. Defaults to 0.

    Returns:
        dict: ``inputs`` (a 1 x 3 x H' x W' tensor, padded as the preprocessor does) and
        ``data_samples``.
    """
    module_name, class_name = DOWNSTREAM_SCOPES[scope]
    sample_class = getattr(importlib.import_module(module_name), class_name)
    shape = (height, width)
    sample = sample_class(metainfo=dict(
        img_shape=shape, ori_shape=shape, pad_shape=shape, scale_factor=(1., 1.)))
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
    return model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), False)
