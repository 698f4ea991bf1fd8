"""compare_dense_sparse.py: the nano demo trained dense and dynamic-sparse, metrics side by side."""
import pytest

from mmslak.datasets import make_tiny_datasets
from .conftest import load_tool

SHORT = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
         *(f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader')
           for key in ('num_workers=0', 'persistent_workers=False'))]


def test_both_runs_train_on_one_schedule_and_print_side_by_side(tmp_path, monkeypatch, capsys):
    make_tiny_datasets(str(tmp_path / 'data' / 'tiny'), which=['ade20k'], num_train=8,
                       num_val=4)
    monkeypatch.chdir(tmp_path)
    tool = load_tool('tools/analysis_tools/compare_dense_sparse.py')
    rows = tool.main(['--work-dir', 'runs', '--cfg-options', *SHORT])
    assert [row['run'] for row in rows] == ['dense', 'dynamic sparse']
    assert rows[0]['density'] == 1
    # the demo's 40% sparsity over the backbone's masked weights (ERK, exact per layer)
    assert rows[1]['density'] == pytest.approx(0.6, abs=1e-3)
    for row in rows:
        assert 0 <= row['mIoU'] <= 100 and 0 <= row['aAcc'] <= 100
    printed = capsys.readouterr().out
    assert 'dense' in printed and 'dynamic sparse' in printed and 'mIoU' in printed
    assert (tmp_path / 'runs' / 'dense' / 'iter_2.pth').is_file()
    assert (tmp_path / 'runs' / 'dynamic_sparse' / 'iter_2.pth').is_file()
