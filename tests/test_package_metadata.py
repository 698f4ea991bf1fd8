"""Packaging: ranges in pyproject.toml, exact pins in requirements/<stack>.txt, .mim files."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import mmslak
from mmslak.stack import SUPPORTED, installed_distributions

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STACKS = ('lock', 'legacy', 'forks')
# The stack this suite runs in (the Makefile's test-<stack> targets set it).
STACK = os.environ.get('MMSLAK_STACK', 'lock')
UPSTREAM = ('mmengine', 'mmcv', 'mmdet', 'mmsegmentation')
FORKS = ('onedl-mmengine', 'onedl-mmcv', 'onedl-mmdetection', 'onedl-mmsegmentation')


def _pyproject():
    with open(osp.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)


def _requirements():
    """The requirements of the package and of its extras (the task packages are extras)."""
    project = _pyproject()['project']
    lines = project['dependencies'] + [
        line for extra in project['optional-dependencies'].values() for line in extra]
    return {canonicalize_name(req.name): req for req in map(Requirement, lines)
            if canonicalize_name(req.name) != 'mmslak'}


def test_install_requires_nothing_that_replaces_a_stack():
    project = _pyproject()['project']
    required = {canonicalize_name(Requirement(line).name) for line in project['dependencies']}
    assert required == {'torch', 'numpy', 'packaging'}
    extras = project['optional-dependencies']
    assert [Requirement(line).name for line in extras['openmmlab']] == list(UPSTREAM)
    assert [Requirement(line).name for line in extras['onedl']] == list(FORKS)
    assert [Requirement(line).name for line in extras['det']] == ['pycocotools', 'scipy']
    assert [Requirement(line).name for line in extras['seg']] == ['scipy']


def test_mim_requirements_are_the_upstream_ranges():
    requirements = _requirements()
    with open(osp.join(ROOT, 'requirements', 'mminstall.txt')) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('#')]
    assert [Requirement(line).name for line in lines] == ['mmcv', 'mmengine']
    for req in map(Requirement, lines):
        assert req.specifier == requirements[req.name].specifier, req


def test_the_import_check_has_the_ranges_of_the_extras():
    requirements = _requirements()
    for distributions in SUPPORTED.values():
        for distribution, (low, high) in distributions.items():
            requirement = requirements[distribution.removesuffix('-lite')]  # mmcv's own build
            assert str(requirement.specifier) == f'<{high},>={low}', distribution


def _pins(stack=STACK):
    pins = {}
    with open(osp.join(ROOT, 'requirements', f'{stack}.txt')) as f:
        for line in f:
            line = line.split('#')[0].strip()
            if line:
                name, sep, pinned = line.partition('==')
                assert sep and pinned, f'not an exact pin: {line!r}'
                pins[canonicalize_name(name)] = pinned
    return pins


def test_stack_has_ranges_not_pins():
    requirements = _requirements()
    for name in ('torch',) + UPSTREAM + FORKS:
        specifiers = {spec.operator for spec in requirements[name].specifier}
        assert '>=' in specifiers and '==' not in specifiers, requirements[name]


@pytest.mark.parametrize('name,admitted,refused', [
    ('torch', ['2.1.2', '2.6.0', '2.13.0', '2.14.1'], ['2.0.1']),
    ('mmengine', ['0.7.1', '0.10.7'], ['0.7.0', '1.0.0']),
    ('mmcv', ['2.0.0', '2.1.0'], ['1.7.2', '2.2.0']),
    ('mmdet', ['3.0.0', '3.3.0'], ['2.28.2', '4.0.0']),
    ('mmsegmentation', ['1.0.0', '1.2.2'], ['0.30.0', '2.0.0']),
    ('onedl-mmengine', ['0.10.12'], ['0.10.10', '1.0.0']),
    ('onedl-mmcv', ['2.3.6'], ['2.3.5', '2.4.0']),
    ('onedl-mmdetection', ['3.5.1'], ['3.5.0', '4.0.0']),
    ('onedl-mmsegmentation', ['1.4.2'], ['1.4.1', '2.0.0']),
])
def test_supported_ranges(name, admitted, refused):
    specifier = _requirements()[name].specifier
    assert all(specifier.contains(v) for v in admitted), (specifier, admitted)
    assert not any(specifier.contains(v) for v in refused), (specifier, refused)


def test_every_floor_has_its_reason():
    """Each dependency line of the stack follows a comment saying why."""
    block = open(osp.join(ROOT, 'pyproject.toml')).read().splitlines()
    for i, line in enumerate(block):
        if re.match(r'\s*"(torch|(onedl-)?(mmengine|mmcv|mmdetection|mmdet|mmsegmentation))[><=]',
                    line):
            assert block[i - 1].strip().startswith('#'), line


@pytest.mark.parametrize('stack', STACKS)
def test_every_lock_file_satisfies_the_ranges(stack):
    pins = _pins(stack)
    family = FORKS if stack == 'forks' else UPSTREAM
    assert {'torch', 'numpy', 'setuptools', *family} <= set(pins), stack
    requirements = _requirements()
    if stack == 'legacy':  # torch 2.1.2 pins triton 2.1.0; the stack leaves out the triton extra
        requirements.pop('triton')
        assert 'EXTRAS=tests,deploy\n' in open(osp.join(ROOT, 'tools', 'setup_env.sh')).read()
    for name, req in requirements.items():
        if name in pins and not req.marker:
            assert req.specifier.contains(pins[name]), (stack, req, pins[name])


def test_this_environment_is_its_lock_file():
    pins = _pins()
    family = FORKS if STACK == 'forks' else UPSTREAM
    for name in ('torch', 'numpy', 'setuptools') + family:
        assert Version(version(name)).base_version == pins[name], name


def _dry_run(requirement):
    """What ``pip install --dry-run requirement`` would install here, offline."""
    run = subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-index', '--no-build-isolation',
         '--quiet', '--report', '-', requirement], capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PIP_CONSTRAINT='', PIP_FIND_LINKS=''))
    assert run.returncode == 0, run.stderr
    return sorted(item['metadata']['name'] for item in json.loads(run.stdout)['install'])


def test_installing_mmslak_installs_mmslak_alone():
    """In an existing stack pip replaces nothing: torch, numpy, the OpenMMLab packages stay."""
    family = 'onedl' if installed_distributions('mmengine') == ['onedl-mmengine'] else 'openmmlab'
    assert _dry_run(ROOT) == ['mmslak']
    assert _dry_run(f'{ROOT}[{family},det,seg]') == ['mmslak']


def test_version_is_the_package_metadata():
    assert version('mmslak') == mmslak.__version__
    assert _pyproject()['tool']['setuptools']['dynamic']['version'] == {
        'attr': 'mmslak.version.__version__'}


def test_setup_env_uses_the_constraints_and_stamps_the_packaging_files():
    script = open(osp.join(ROOT, 'tools', 'setup_env.sh')).read()
    assert 'CONSTRAINTS=$ROOT/requirements/$STACK.txt' in script
    assert '-c "$CONSTRAINTS"' in script
    fingerprint = script.split('fingerprint() {', 1)[1].split('}', 1)[0]
    for name in ('setup.cfg', 'setup.py', 'pyproject.toml', '$CONSTRAINTS'):
        assert name in fingerprint
    assert "'pip<25'" not in script  # PEP 660 editables: no `setup.py develop` to dodge


def test_build_copies_the_mim_files(tmp_path):
    """What a wheel's mmslak/.mim holds: configs, tools, model-index.yml; no caches or wheels."""
    spec = importlib.util.spec_from_file_location('mmslak_setup', osp.join(ROOT, 'setup.py'))
    setup_py = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_py)  # setup() itself only runs as __main__
    setup_py.copy_mim_files(str(tmp_path))
    mim = tmp_path / '.mim'
    assert (mim / 'model-index.yml').read_text() == open(osp.join(ROOT, 'model-index.yml')).read()
    for path in ('configs/segmentation/slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py',
                 'configs/segmentation/metafile.yml', 'configs/_base_/models/upernet_slak.py',
                 'tools/train.py', 'tools/test.py', 'tools/dist_train.sh'):
        assert (mim / path).is_file(), path
    shipped = [p.name for p in mim.rglob('*')]
    assert '__pycache__' not in shipped and 'wheels' not in shipped
    assert not [name for name in shipped if name.endswith('.whl')]


def test_manifest_ships_what_the_build_copies():
    manifest = open(osp.join(ROOT, 'MANIFEST.in')).read()
    for line in ('graft configs', 'graft tools', 'prune tools/gpu_check/wheels'):
        assert line in manifest
    assert re.search(r'^include .*\bmodel-index\.yml', manifest, re.M)
