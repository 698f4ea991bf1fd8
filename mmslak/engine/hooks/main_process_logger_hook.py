from mmengine.dist import is_main_process
from mmengine.hooks import LoggerHook

from mmslak.registry import HOOKS


@HOOKS.register_module()
class MainProcessLoggerHook(LoggerHook):
    """mmengine's ``LoggerHook`` whose test metrics file is written by the main process only.

    mmengine's hook writes ``<timestamp>.json`` after a test from every process into the same
    file, opened for writing by each: with several processes the file can end up holding one
    process's line followed by the tail of another's, which no JSON reader accepts.
    :class:`~mmslak.engine.runner.ToolRunner` builds this hook wherever a config names
    ``LoggerHook`` (:class:`~mmslak.engine.runner.MainProcessLoggerMixin`); it takes the same
    arguments.
    """

    def after_test_epoch(self, runner, metrics=None):
        if is_main_process():
            super().after_test_epoch(runner, metrics)
            return
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)
