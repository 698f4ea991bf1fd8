"""Building the runner of ``tools/train.py`` and ``tools/test.py``."""
from mmengine.registry import RUNNERS

from mmslak.engine.runner import ToolRunner
from .cpu_launcher import prepare_launcher


def build_runner(cfg):
    """Build the config's runner after :func:`prepare_launcher`.

    Args:
        cfg (Config): The config; :func:`prepare_launcher` changes it in place.

    Returns:
        Runner: ``runner_type`` if the config names one, else ``mmslak.ToolRunner``
        (checkpoints load only if they fit, failing data files are named, one process writes
        the test metrics).
    """
    prepare_launcher(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return ToolRunner.from_cfg(cfg)
