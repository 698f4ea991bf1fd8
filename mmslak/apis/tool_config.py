"""Reading the config of ``tools/train.py`` and ``tools/test.py``: its task and the options."""
import os.path as osp

from mmengine.config import Config, DictAction

from mmslak.stack import check_task

# default_scope of a config -> the task it runs and how its visualisation hook saves pictures.
TASKS = {'mmseg': 'segmentation', 'mmdet': 'detection'}


def task_of(cfg):
    """The task of a config, from its ``default_scope``.

    Args:
        cfg (Config): The config.

    Returns:
        str: ``'segmentation'`` or ``'detection'``.

    Raises:
        ValueError: If the config is neither an mmseg nor an mmdet config.
    """
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'The config is neither an mmseg nor an mmdet config (its default_scope '
                         f'is {scope!r}); set default_scope to one of {sorted(TASKS)}')
    return TASKS[scope]


def add_common_args(parser):
    """Add the arguments that both entry points take, as the upstream tools name them.

    Args:
        parser (argparse.ArgumentParser): The tool's parser.
    """
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
    """Read the config and apply ``--cfg-options``, ``--launcher`` and ``--work-dir``.

    Args:
        args (argparse.Namespace): The arguments of :func:`add_common_args`.

    Returns:
        Config: The config.

    Raises:
        FileNotFoundError: If the config file does not exist.
        ValueError: If it is neither an mmseg nor an mmdet config.
    """
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    task_of(cfg)
    check_task(cfg.default_scope)  # after task_of: a config of neither task is named as such
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
