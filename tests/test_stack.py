"""The check of the installed torch and OpenMMLab packages (mmslak/stack.py)."""
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

from mmslak import stack

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
UPSTREAM = {'torch': '2.1.2', 'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmdet': '3.3.0',
            'mmsegmentation': '1.2.2', 'setuptools': '80.10.2'}
FORKS = {'torch': '2.14.1', 'onedl-mmengine': '0.10.12', 'onedl-mmcv': '2.3.6',
         'onedl-mmdetection': '3.5.1', 'onedl-mmsegmentation': '1.4.2', 'setuptools': '84.2.1'}
IMPORT_NAMES = {'mmengine': 'mmengine', 'mmcv': 'mmcv', 'mmcv-lite': 'mmcv', 'mmdet': 'mmdet',
                'mmsegmentation': 'mmseg'}


@pytest.fixture
def fake_stack(monkeypatch):
    """Install a pretend set of distributions: ``fake_stack(versions, pkg_resources, ext)``."""

    def install(versions, pkg_resources=True, ext=True):
        providers = {}
        for distribution in versions:
            name = IMPORT_NAMES.get(distribution.replace('onedl-', '').replace(
                'mmdetection', 'mmdet'))
            if name:
                providers.setdefault(name, []).append(distribution)
        monkeypatch.setattr(stack, '_top_level_distributions', lambda: providers)

        def version(name):
            if name not in versions:
                raise stack.PackageNotFoundError(name)
            return versions[name]

        found = {'pkg_resources': pkg_resources, 'mmcv._ext': ext}
        monkeypatch.setattr(stack, 'version', version)
        monkeypatch.setattr(stack.importlib.util, 'find_spec',
                            lambda name: object() if found.get(name, name in providers) else None)

    return install


@pytest.mark.parametrize('versions', [UPSTREAM, FORKS], ids=['upstream', 'forks'])
def test_supported_stacks_pass(fake_stack, versions):
    fake_stack(versions)
    stack.check_stack()
    stack.check_task('mmdet')
    stack.check_task('mmseg')


@pytest.mark.parametrize('change,message', [
    (dict(mmcv='2.2.0'), r"mmcv 2\.2\.0 is not supported \(mmslak runs on mmcv>=2\.0\.0,<2\.2\.0\)"
     r".*mim install"),
    (dict(mmengine='0.7.0'), r"mmengine 0\.7\.0 is not supported.*pip install 'mmengine>=0\.7\.1"),
    (dict(torch='2.0.1'), r'torch 2\.0\.1 is older than 2\.1'),
    (dict(mmdet='2.28.2'), r'mmdet 2\.28\.2 is not supported'),
])
def test_unsupported_versions_are_named_with_their_fix(fake_stack, change, message):
    fake_stack(dict(UPSTREAM, **change))
    with pytest.raises(stack.UnsupportedStackError, match=f'(?s){message}'):
        stack.check_stack()


def test_missing_engine_names_both_families_install(fake_stack):
    fake_stack({name: v for name, v in UPSTREAM.items() if name != 'mmengine'})
    with pytest.raises(stack.UnsupportedStackError) as error:
        stack.check_stack()
    assert "`mmengine` is not installed: pip install 'mmengine>=0.7.1,<1.0.0'" in str(error.value)
    assert 'mmslak[onedl]' in str(error.value)


def test_a_fork_beside_its_upstream_is_a_conflict(fake_stack):
    fake_stack(dict(UPSTREAM, **{'onedl-mmcv': '2.3.6'}))
    with pytest.raises(stack.UnsupportedStackError,
                       match='mmcv and onedl-mmcv are both installed and write the same `mmcv`'):
        stack.check_stack()


def test_mixed_families_are_refused(fake_stack):
    versions = dict(FORKS, mmcv='2.1.0')
    del versions['onedl-mmcv']
    fake_stack(versions)
    with pytest.raises(stack.UnsupportedStackError,
                       match=r"mmcv 2\.1\.0 is upstream, the engine is OneDL \(one stack is of one "
                       r"family\): pip install 'onedl-mmcv>=2\.3\.6,<2\.4\.0'"):
        stack.check_stack()


def test_upstream_mmengine_without_pkg_resources(fake_stack):
    fake_stack(dict(UPSTREAM, setuptools='82.0.0'), pkg_resources=False)
    with pytest.raises(stack.UnsupportedStackError,
                       match=r"pkg_resources, which setuptools>=82 no longer ships \(setuptools "
                       r"82\.0\.0 is installed\): pip install 'setuptools<82'"):
        stack.check_stack()


def test_the_forks_need_no_pkg_resources(fake_stack):
    fake_stack(FORKS, pkg_resources=False)
    stack.check_stack()


def test_mmcv_lite_serves_the_backbone_not_the_tools(fake_stack):
    """mmcv-lite (mmcv without its compiled ops; the GPU check carries it) with the engine
    alone: the backbone imports, a tool's run asks for the ops."""
    fake_stack({'torch': '2.11.0', 'mmengine': '0.10.7', 'mmcv-lite': '2.1.0',
                'setuptools': '80.10.2'}, ext=False)
    stack.check_stack()
    with pytest.raises(stack.UnsupportedStackError, match=r'`mmseg` is not installed'):
        stack.check_task('mmseg')
    fake_stack({'torch': '2.11.0', 'mmengine': '0.10.7', 'mmcv-lite': '2.2.0'}, ext=False)
    with pytest.raises(stack.UnsupportedStackError, match=r'mmcv-lite 2\.2\.0 is not supported'):
        stack.check_stack()


def test_task_needs_its_package_and_mmcv_ops(fake_stack):
    fake_stack({name: v for name, v in UPSTREAM.items() if name != 'mmdet'})
    stack.check_stack()  # a segmentation-only install is fine until a detection run starts
    with pytest.raises(stack.UnsupportedStackError, match="`mmdet` is not installed: pip install"):
        stack.check_task('mmdet')
    fake_stack(UPSTREAM, ext=False)
    with pytest.raises(stack.UnsupportedStackError,
                       match=r'without its compiled ops \(mmcv._ext\).*MMCV_WITH_OPS=1'):
        stack.check_task('mmseg')


def test_the_installed_stack_is_supported():
    stack.check_stack()
    stack.check_task('mmdet')
    stack.check_task('mmseg')


# As with setuptools >= 82: `pkg_resources` cannot be imported (and find_spec finds none).
NO_PKG_RESOURCES = textwrap.dedent('''
    import runpy, sys

    sys.modules['pkg_resources'] = None
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name='__main__')
''')


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_tools_stop_with_one_message_without_pkg_resources(tool):
    if 'mmengine' not in stack.installed_distributions('mmengine'):
        pytest.skip('the OneDL engine needs no pkg_resources: nothing to refuse')
    config = osp.join(ROOT, 'configs', 'demo', 'slak-nano_upernet_1xb8-200iter_tiny-ade20k-'
                      '128x128.py')
    args = [config] + (['missing.pth'] if tool.endswith('test.py') else [])
    run = subprocess.run([sys.executable, '-c', NO_PKG_RESOURCES, osp.join(ROOT, tool), *args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert 'Traceback' not in run.stderr
    assert run.stderr.startswith('mmslak cannot run on the installed packages:\n  - mmengine ')
    assert "pip install 'setuptools<82'" in run.stderr
