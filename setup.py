"""Build hook: ship configs, tools and model-index.yml inside the package, as OpenMMLab does.

Metadata lives in pyproject.toml. A regular (non-editable) build copies them into
``mmslak/.mim/`` so that an installed mmslak, ``mim train mmslak CONFIG`` and ``mim search``
find the recipes; an editable install reads them from the clone instead.
"""
import os
import os.path as osp
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')
# Never shipped: caches, and the wheels the GPU check carries to an offline machine.
MIM_IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', 'wheels')


def copy_mim_files(package_dir, root=ROOT):
    """Copy configs, tools and model-index.yml from ``root`` into ``package_dir/.mim``."""
    mim_dir = osp.join(package_dir, '.mim')
    for name in MIM_FILES:
        src = osp.join(root, name)
        if not osp.exists(src):
            raise FileNotFoundError(f'{src} is missing: the sdist must include {name} '
                                    '(see MANIFEST.in)')
        dst = osp.join(mim_dir, name)
        if osp.isdir(src):
            shutil.copytree(src, dst, ignore=MIM_IGNORE, dirs_exist_ok=True)
        else:
            os.makedirs(mim_dir, exist_ok=True)
            shutil.copyfile(src, dst)


class BuildPyWithMim(build_py):
    """``build_py`` that also copies the OpenMMLab ``.mim`` files into the built package."""

    def run(self):
        super().run()
        if not getattr(self, 'editable_mode', False):
            copy_mim_files(osp.join(self.build_lib, 'mmslak'))


if __name__ == '__main__':  # as PEP 517 backends run it; tests import copy_mim_files
    setup(cmdclass={'build_py': BuildPyWithMim})
