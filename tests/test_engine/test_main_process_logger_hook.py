"""One process writes the test metrics file: mmengine's LoggerHook lets every process write it."""
import json
from types import SimpleNamespace
from unittest import mock

import pytest
import torch
from mmengine.hooks import LoggerHook
from mmengine.logging import MMLogger
from mmengine.model import BaseModel

from mmslak.engine import MainProcessLoggerHook, ToolRunner
from mmslak.engine.hooks import main_process_logger_hook


def _tested_runner(log_dir):
    log_processor = mock.Mock()
    log_processor.get_log_after_epoch.return_value = ({'mIoU': 41.5}, 'Epoch(test) mIoU: 41.5')
    return SimpleNamespace(log_dir=str(log_dir), timestamp='20261202_000000',
                           log_processor=log_processor, test_dataloader=[0, 1],
                           logger=MMLogger.get_current_instance())


@pytest.mark.parametrize('main', [True, False])
def test_only_the_main_process_writes_the_test_metrics(main, tmp_path, mmlogs):
    hook, runner = MainProcessLoggerHook(), _tested_runner(tmp_path)
    hook.json_log_path = f'{runner.timestamp}.json'  # as before_run sets it
    with mock.patch.object(main_process_logger_hook, 'is_main_process', return_value=main):
        hook.after_test_epoch(runner)
    written = tmp_path / '20261202_000000.json'
    assert written.exists() == main
    if main:
        assert json.loads(written.read_text()) == {'mIoU': 41.5}
    assert 'Epoch(test) mIoU: 41.5' in mmlogs.text  # every process still logs them


class _Toy(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.linear(inputs)


@pytest.mark.parametrize('logger', [dict(type='LoggerHook'), dict(type='LoggerHook', interval=5),
                                    dict(type=LoggerHook)])
def test_the_tool_runner_builds_loggerhook_as_the_single_writer(logger, tmp_path):
    runner = ToolRunner(model=_Toy(), work_dir=str(tmp_path), default_hooks=dict(logger=logger))
    loggers = [hook for hook in runner.hooks if isinstance(hook, LoggerHook)]
    assert [type(hook) for hook in loggers] == [MainProcessLoggerHook]
    assert loggers[0].interval == logger.get('interval', 10)
