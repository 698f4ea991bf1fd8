"""Registries of the ``mmslak`` scope.

Each registry is a child of the matching mmengine root registry, so configs of mmdet, mmseg or
mmpretrain reach the modules of this package as ``type='mmslak.<Name>'`` once ``mmslak`` is imported
(``custom_imports=dict(imports=['mmslak'])``), and ``locations`` let mmengine import them lazily.
"""
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmslak', locations=['mmslak.models'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmslak',
    locations=['mmslak.engine.optimizers'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmslak', locations=['mmslak.engine.hooks'])
MODEL_WRAPPERS = Registry(
    'model_wrapper',
    parent=MMENGINE_MODEL_WRAPPERS,
    scope='mmslak',
    locations=['mmslak.engine.model_wrappers'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper',
    parent=MMENGINE_OPTIM_WRAPPERS,
    scope='mmslak',
    locations=['mmslak.engine.optimizers'])
RUNNERS = Registry(
    'runner', parent=MMENGINE_RUNNERS, scope='mmslak', locations=['mmslak.engine.runner'])
