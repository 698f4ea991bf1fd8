"""A runner piece: configs of mmengine's ``LoggerHook`` build the single-writer logger hook."""
from mmengine.hooks import LoggerHook

from mmslak.engine.hooks import MainProcessLoggerHook

# How a config names mmengine's LoggerHook.
LOGGER_HOOK_TYPES = ('LoggerHook', 'mmengine.LoggerHook', LoggerHook)


class MainProcessLoggerMixin:
    """Runner mixin: a config of ``LoggerHook`` builds :class:`MainProcessLoggerHook`.

    mmengine's ``LoggerHook`` writes the test metrics file from every process into the same
    file; :class:`~mmslak.engine.hooks.MainProcessLoggerHook` (same arguments) has one writer.
    """

    def register_hook(self, hook, priority=None):
        """Register ``hook``, a ``LoggerHook`` config as a ``MainProcessLoggerHook`` one.

        Args:
            hook (Hook | dict): The hook or its config.
            priority (int | str | Priority, optional): Its priority. Defaults to None.
        """
        if isinstance(hook, dict) and hook.get('type') in LOGGER_HOOK_TYPES:
            hook = dict(hook, type=MainProcessLoggerHook)
        super().register_hook(hook, priority)
