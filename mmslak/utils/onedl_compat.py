"""Let mmengine find the ``mmseg::`` bases of configs when onedl-mmsegmentation provides mmseg.

mmengine resolves ``mmseg::path`` through its ``MODULE2PACKAGE`` table, which names the
distribution ``mmsegmentation``. The OneDL fork installs the same ``mmseg`` package as the
distribution ``onedl-mmsegmentation``, so onedl-mmengine 0.10.12 answers "mmsegmentation is not
installed" for every config with an ``mmseg::`` base. ``import mmslak`` points that one entry at
the distribution that is installed, and only where the named one is not.
"""
from importlib.metadata import PackageNotFoundError, version

from mmslak.stack import installed_distributions


def _installed(distribution):
    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def map_forked_config_scopes():
    """Point mmengine's config scopes at the OneDL distributions that provide them.

    Returns:
        dict: The entries changed, scope -> distribution (empty where nothing needed it).
    """
    from mmengine.config import utils as config_utils
    changed = {}
    for scope, distribution in list(config_utils.MODULE2PACKAGE.items()):
        if _installed(distribution):
            continue
        forks = [name for name in installed_distributions(scope) if name.startswith('onedl-')]
        if len(forks) == 1:
            config_utils.MODULE2PACKAGE[scope] = changed[scope] = forks[0]
    return changed
