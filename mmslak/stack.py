"""Which torch and OpenMMLab packages are installed, and whether mmslak runs on them.

The OpenMMLab packages are not install requirements of mmslak (pip would install upstream mmcv
over a working OneDL fork, or replace the user's torch to build it), so mmslak checks them where
it starts: :func:`check_stack` at ``import mmslak`` (torch, the engine and mmcv, and the task
packages that are installed), :func:`check_task` where a tool starts a detection or segmentation
run. Each problem is named with the command that fixes it, in one :class:`UnsupportedStackError`.

Upstream packages and their OneDL forks install the same import names (``mmengine``, ``mmcv``,
``mmdet``, ``mmseg``) under other distribution names (``onedl-mmengine``, ...); one stack is all
of one family. This module imports nothing but the standard library and ``packaging``: it runs
before anything that a broken stack could break.
"""
import functools
import importlib.util
from importlib.metadata import PackageNotFoundError, packages_distributions, version

from packaging.version import Version

# import name -> {distribution: (lowest supported, first unsupported)}; the ranges of
# pyproject.toml's `openmmlab` and `onedl` extras.
SUPPORTED = {
    'mmengine': {'mmengine': ('0.7.1', '1.0.0'), 'onedl-mmengine': ('0.10.12', '1.0.0')},
    # mmcv-lite: mmcv without its compiled ops, enough for the backbone (the tools need the ops)
    'mmcv': {'mmcv': ('2.0.0', '2.2.0'), 'mmcv-lite': ('2.0.0', '2.2.0'),
             'onedl-mmcv': ('2.3.6', '2.4.0')},
    'mmdet': {'mmdet': ('3.0.0', '4.0.0'), 'onedl-mmdetection': ('3.5.1', '4.0.0')},
    'mmseg': {'mmsegmentation': ('1.0.0', '2.0.0'), 'onedl-mmsegmentation': ('1.4.2', '2.0.0')},
}
TORCH_MINIMUM = '2.1'
# The task of a config's default_scope -> its import name.
TASK_PACKAGES = {'mmdet': 'mmdet', 'mmseg': 'mmseg'}
UPSTREAM_INSTALL = "pip install -U openmim && mim install 'mmengine>=0.7.1,<1.0.0' " \
    "'mmcv>=2.0.0,<2.2.0'"


class UnsupportedStackError(ImportError):
    """The installed torch or OpenMMLab packages are missing, too old, too new or mixed."""


def _family(distribution):
    return 'OneDL' if distribution.startswith('onedl-') else 'upstream'


def _install_command(import_name, family):
    """The command that installs a supported release of ``import_name`` in ``family``."""
    distribution = next(dist for dist in SUPPORTED[import_name] if _family(dist) == family)
    low, high = SUPPORTED[import_name][distribution]
    pip = f"pip install '{distribution}>={low},<{high}'"
    if distribution == 'mmcv':  # its compiled ops come from a source build on torch >= 2.2
        return f'{UPSTREAM_INSTALL}  (or: MMCV_WITH_OPS=1 {pip} --no-build-isolation)'
    if distribution == 'onedl-mmcv':
        return f'{pip} --no-build-isolation'
    return pip


def installed_distributions(import_name):
    """The distributions that provide the top-level package ``import_name``.

    Args:
        import_name (str): e.g. ``'mmcv'``.

    Returns:
        list[str]: Their names, e.g. ``['onedl-mmcv']``; empty if none is installed.
    """
    names = _top_level_distributions().get(import_name, [])
    return sorted({name.lower().replace('_', '-') for name in names})


@functools.lru_cache(maxsize=None)
def _top_level_distributions():
    return packages_distributions()  # reads every installed distribution's metadata once


def _problems_of(import_name, family):
    """What is wrong with the installed ``import_name``, given the stack's ``family``."""
    distributions = [dist for dist in installed_distributions(import_name)
                     if dist in SUPPORTED[import_name]]
    if len(distributions) > 1:
        return [f'{" and ".join(distributions)} are both installed and write the same '
                f'`{import_name}` package: uninstall one (pip uninstall {distributions[0]})']
    if not distributions:
        if importlib.util.find_spec(import_name) is None:
            return [f'`{import_name}` is not installed: '
                    f'{_install_command(import_name, family)}']
        return [f'`{import_name}` is installed by none of {sorted(SUPPORTED[import_name])}: '
                f'install one: {_install_command(import_name, family)}']
    distribution, = distributions
    installed = Version(version(distribution))
    low, high = SUPPORTED[import_name][distribution]
    if _family(distribution) != family:
        return [f'{distribution} {installed} is {_family(distribution)}, the engine is {family} '
                f'(one stack is of one family): {_install_command(import_name, family)}']
    if not Version(low) <= installed < Version(high):
        return [f'{distribution} {installed} is not supported (mmslak runs on {distribution}'
                f'>={low},<{high}): {_install_command(import_name, family)}']
    return []


def _stack_family():
    """The family of the installed engine (``mmengine`` or ``onedl-mmengine``)."""
    engines = [dist for dist in installed_distributions('mmengine')
               if dist in SUPPORTED['mmengine']]
    return _family(engines[0]) if len(engines) == 1 else 'upstream'


def _setuptools_problem():
    """Upstream mmengine resolves ``mmdet::``/``mmseg::`` bases with ``pkg_resources``."""
    if 'mmengine' not in installed_distributions('mmengine') or \
            importlib.util.find_spec('pkg_resources') is not None:
        return []
    try:
        setuptools = f'setuptools {version("setuptools")} is installed'
    except PackageNotFoundError:
        setuptools = 'setuptools is not installed'
    return [f'mmengine {version("mmengine")} resolves the mmdet::/mmseg:: bases of configs with '
            f'pkg_resources, which setuptools>=82 no longer ships ({setuptools}): '
            "pip install 'setuptools<82', or use the OneDL fork onedl-mmengine, which does not "
            'need it']


def _torch_problem():
    try:
        installed = version('torch')
    except PackageNotFoundError:
        return ['torch is not installed: pip install torch (see https://pytorch.org)']
    if Version(installed).release < Version(TORCH_MINIMUM).release:
        return [f'torch {installed} is older than {TORCH_MINIMUM}, the oldest mmslak runs on: '
                f'pip install "torch>={TORCH_MINIMUM}"']
    return []


def _raise(problems):
    if problems:
        raise UnsupportedStackError(
            'mmslak cannot run on the installed packages:\n' +
            '\n'.join(f'  - {problem}' for problem in problems) +
            '\nSupported stacks: upstream OpenMMLab (pip install "mmslak[openmmlab]") or the OneDL '
            'forks (pip install "mmslak[onedl]"); README.md, "Supported stacks".')


def check_stack():
    """Check torch, the engine, mmcv and the installed task packages (``import mmslak``).

    Raises:
        UnsupportedStackError: Naming each missing, unsupported or mixed package and its fix.
    """
    family = _stack_family()
    problems = _torch_problem() + _problems_of('mmengine', family) + _setuptools_problem()
    problems += _problems_of('mmcv', family)
    for task_package in TASK_PACKAGES.values():
        if installed_distributions(task_package):
            problems += _problems_of(task_package, family)
    _raise(problems)


def check_task(scope):
    """Check the task package of a config's ``default_scope`` and mmcv's compiled ops.

    Args:
        scope (str): ``'mmdet'`` or ``'mmseg'``.

    Raises:
        UnsupportedStackError: If the task package is missing or unsupported, or mmcv was
            built without the compiled ops its models use (RoIAlign, NMS).
    """
    family = _stack_family()
    problems = _problems_of(TASK_PACKAGES[scope], family)
    if not problems and importlib.util.find_spec('mmcv._ext') is None:
        problems.append('mmcv was built without its compiled ops (mmcv._ext), which the '
                        f'{scope} models use: {_install_command("mmcv", family)}')
    _raise(problems)
