"""The centroid_tailoring project stays out of the mmslak package: not in its wheel, not imported
by it, and its tools run from the repository root."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest
from setuptools import find_packages

from .conftest import PROJECT, ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def test_the_wheel_has_mmslak_alone():
    with open(osp.join(ROOT, 'pyproject.toml'), 'rb') as file:
        find = tomllib.load(file)['tool']['setuptools']['packages']['find']
    packages = find_packages(ROOT, **find)
    assert 'mmslak' in packages
    assert all(name == 'mmslak' or name.startswith('mmslak.') for name in packages), packages


def test_mmslak_imports_nothing_of_the_project():
    imported = set()
    for folder, _, names in os.walk(osp.join(ROOT, 'mmslak')):
        for name in (name for name in names if name.endswith('.py')):
            with open(osp.join(folder, name)) as file:
                tree = ast.parse(file.read())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    imported.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    imported.add(node.module)
    tops = {name.split('.')[0] for name in imported}
    assert not tops & {'projects', 'one_pixel'}


@pytest.mark.parametrize('tool', ['attack', 'study'])
def test_the_tools_run_from_the_repository_root(tool):
    path = osp.relpath(osp.join(PROJECT, 'tools', f'{tool}.py'), ROOT)
    result = subprocess.run([sys.executable, path, '--help'], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'usage:' in result.stdout
