"""The hooks that the tools add or switch on: training safeguards, the visualisation hook."""
from .tool_config import task_of

SAFEGUARD_HOOKS = ('FiniteLossHook', 'RandomStateHook')


def add_training_safeguards(cfg):
    """Add ``mmslak.FiniteLossHook`` and ``mmslak.RandomStateHook`` to ``custom_hooks``.

    The run then stops at the first non-finite loss, and a resumed run draws the random
    numbers the interrupted one would have. Hooks the config already lists are not repeated.

    Args:
        cfg (Config): The config; changed in place.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    listed = {hook.get('type') for hook in hooks}
    for name in SAFEGUARD_HOOKS:
        if name not in listed and f'mmslak.{name}' not in listed:
            hooks.append(dict(type=f'mmslak.{name}'))
    cfg.custom_hooks = hooks


def enable_visualization(cfg, show_dir=None, show=False, wait_time=2.):
    """Turn on the task's visualisation hook; pictures go to ``show_dir`` when given.

    Args:
        cfg (Config): The config; changed in place.
        show_dir (str, optional): Folder for the pictures. Defaults to None.
        show (bool): Show each picture in a window. Defaults to False.
        wait_time (float): Seconds each shown picture stays. Defaults to 2.

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
