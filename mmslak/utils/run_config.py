"""Config preparation shared by ``tools/train.py`` and ``tools/test.py`` for mmdet and mmseg."""
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

# default_scope of a config -> the task it runs and how its visualisation hook saves pictures.
TASKS = {'mmseg': 'segmentation', 'mmdet': 'detection'}


def task_of(cfg):
    """The task of a config, from its ``default_scope``.

    Raises:
        ValueError: If the config is neither an mmseg nor an mmdet config.
    """
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'The config is neither an mmseg nor an mmdet config (its default_scope '
                         f'is {scope!r}); set default_scope to one of {sorted(TASKS)}')
    return TASKS[scope]


def add_common_args(parser):
    """Arguments that both entry points take, as the upstream tools name them."""
    parser.add_argument('config', help='config file of an mmseg or mmdet model')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints '
                        '(default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. model.backbone.init_cfg.checkpoint=SLaK_tiny.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed runs')
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args):
    """Read the config and apply ``--cfg-options``, ``--launcher`` and ``--work-dir``."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    task_of(cfg)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def enable_visualization(cfg, show_dir=None, show=False, wait_time=2.):
    """Turn on the task's visualisation hook; pictures go to ``show_dir`` when given.

    Raises:
        ValueError: If the config has no visualisation hook.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError("The config's default_hooks has no 'visualization' hook to draw with")
    # mmseg's hook draws every ``interval``-th image only (50 by default): draw them all.
    hook.update(draw=True, interval=1)
    if show:
        hook.update(show=True, wait_time=wait_time)
    if show_dir is not None:
        if task_of(cfg) == 'segmentation':
            cfg.visualizer['save_dir'] = show_dir
        else:
            hook['test_out_dir'] = show_dir


def build_runner(cfg):
    """Build the config's runner (``runner_type`` if it names one)."""
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
