from mmslak.registry import RUNNERS
from .checked_runner import CheckedRunner
from .main_process_logging import MainProcessLoggerMixin
from .named_file_errors import NamedFileErrorsMixin


@RUNNERS.register_module()
class ToolRunner(MainProcessLoggerMixin, NamedFileErrorsMixin, CheckedRunner):
    """The runner of ``tools/train.py``, ``tools/test.py`` and the recipes (``runner_type``).

    :class:`CheckedRunner` (checkpoints load only if they fit) whose data loaders name the
    files of a sample that fails (:class:`NamedFileErrorsMixin`) and whose ``LoggerHook`` has
    one writer of the test metrics (:class:`MainProcessLoggerMixin`). The tools build it unless
    the config names another ``runner_type``.
    """
