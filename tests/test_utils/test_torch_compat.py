"""The torch 2.1 .. 2.14 compatibility layer (mmslak/utils/torch_compat.py)."""
import torch

from mmslak.utils.torch_compat import add_step_hooks


def test_step_hooks_fire_after_torch_compile_and_come_off():
    """torch 2.1's own step hooks stop firing once dynamo has run in the process: these do not."""
    model = torch.nn.Linear(2, 2)
    torch.compile(torch.nn.Linear(2, 2), backend='eager')(torch.randn(1, 2))
    optimizer = torch.optim.AdamW(model.parameters())
    calls = []
    remove = add_step_hooks(optimizer, lambda *args: calls.append('before'),
                            lambda *args: calls.append('after'))
    model(torch.randn(1, 2)).sum().backward()
    optimizer.step()
    assert calls == ['before', 'after']
    remove()
    optimizer.step()
    assert calls == ['before', 'after'] and 'step' not in optimizer.__dict__
