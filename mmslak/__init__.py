"""mmslak: SLaK backbones for the OpenMMLab 2.0 stack.

Configs load it with ``custom_imports=dict(imports=['mmslak'])``.
"""
from .utils import allow_runner_checkpoints
from .version import __version__

allow_runner_checkpoints()

from . import engine, models  # noqa: E402,F401  (registers the modules)

__all__ = ['__version__']
