from .checked_runner import CheckedRunner
from .main_process_logging import MainProcessLoggerMixin
from .named_file_errors import NamedFileErrorsMixin
from .tool_runner import ToolRunner

__all__ = ['CheckedRunner', 'MainProcessLoggerMixin', 'NamedFileErrorsMixin', 'ToolRunner']
