"""Helpers of the project tests: the centroid_tailoring project's package on the path, as its
tools put it, and its tools loaded as modules."""
import importlib.util
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PROJECT = osp.join(ROOT, 'projects', 'centroid_tailoring')
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)


def load_tool(name):
    """Import a tool script of the project (not a package module).

    Args:
        name (str): The tool's file name without ``.py``, e.g. ``'attack'``.

    Returns:
        module: The tool, imported as ``centroid_tailoring_NAME``.
    """
    path = osp.join(PROJECT, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'centroid_tailoring_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
