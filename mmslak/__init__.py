"""mmslak: SLaK backbones for the OpenMMLab 2.0 stack.

Configs load it with ``custom_imports=dict(imports=['mmslak'])``.
"""
from .stack import check_stack

check_stack()  # before anything that an unsupported torch or OpenMMLab install could break

from .utils.onedl_compat import map_forked_config_scopes  # noqa: E402

map_forked_config_scopes()  # mmseg:: bases with onedl-mmsegmentation (see its docstring)

from . import engine, models  # noqa: E402,F401  (registers the modules)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
