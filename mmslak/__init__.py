"""mmslak: SLaK backbones for the OpenMMLab 2.0 stack.

Configs load it with ``custom_imports=dict(imports=['mmslak'])``.
"""
from .stack import check_stack

check_stack()  # before anything that an unsupported torch or OpenMMLab install could break

from . import engine, models  # noqa: E402,F401  (registers the modules)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
