"""FiniteLossHook stops at the first non-finite loss; RandomStateHook round-trips the state."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmslak.engine import FiniteLossHook, RandomStateHook


def test_finite_loss_passes_and_non_finite_stops_naming_the_terms():
    hook = FiniteLossHook()
    runner = SimpleNamespace(iter=6)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.5)))
    outputs = dict(loss=torch.tensor(float('nan')), **{
        'decode.loss_ce': torch.tensor(float('inf')), 'aux.loss_ce': torch.tensor(0.3)})
    with pytest.raises(RuntimeError, match=r'not finite at iteration 7 \(loss: nan, '
                       r'decode.loss_ce: inf\); training stopped before saving'):
        hook.after_train_iter(runner, 0, outputs=outputs)


def _draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_random_state_is_saved_and_restored_only_when_resuming():
    hook, checkpoint = RandomStateHook(), dict(meta=dict(iter=2))
    hook.before_save_checkpoint(None, checkpoint)
    expected = _draws()
    # a resumed run (the runner is at the checkpoint's iteration) gets the state back
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(SimpleNamespace(iter=2))
    assert _draws() == expected
    # load_from without resuming starts at iteration 0 and restores nothing
    hook.after_load_checkpoint(None, checkpoint)
    hook.before_train(SimpleNamespace(iter=0))
    assert _draws() != expected


def test_resuming_a_checkpoint_without_random_state_warns(mmlogs):
    hook = RandomStateHook()
    hook.after_load_checkpoint(None, dict(meta=dict(iter=2)))
    hook.before_train(SimpleNamespace(iter=2))
    assert 'holds no random state' in mmlogs.text
