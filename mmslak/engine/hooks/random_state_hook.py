import logging
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmslak.registry import HOOKS


def _random_state():
    """The state of every generator a training process draws from."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_random_state(state):
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random state of every process with each checkpoint; restore it on resume.

    mmengine's checkpoints bring back the weights, the optimizer, the schedulers and the data
    order, but not the generators that drop path and dropout draw from: a resumed run then
    draws other masks than the uninterrupted one. This hook adds ``random_state`` to each
    checkpoint (Python's ``random``, numpy's global generator, torch's CPU and CUDA generators;
    one entry per process, gathered from all of them) and, when a run resumes from such a
    checkpoint, gives each process its own state back before the first resumed iteration.
    A checkpoint loaded with ``load_from`` without resuming restores nothing.

    The resumed run is then bit-identical when the data pipeline runs in worker processes
    (``num_workers > 0``, seeded by mmengine as before): with ``num_workers=0`` mmengine's
    resume replays the skipped batches through the pipeline in the training process, whose
    augmentations draw from these generators once more.

    ``tools/train.py`` adds this hook to every run.
    """

    priority = 'VERY_HIGH'

    def __init__(self):
        self._states = None
        self._loaded = None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        # mmengine saves checkpoints on the first process only, where no collective can run:
        # every process's state is gathered after each iteration instead (a few KiB)
        self._states = all_gather_object(_random_state())

    def before_save_checkpoint(self, runner, checkpoint):
        if self._states is None and get_world_size() == 1:
            self._states = [_random_state()]
        if self._states is not None:
            checkpoint['random_state'] = self._states

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded = (checkpoint.get('meta', {}).get('iter'), checkpoint.get('random_state'))

    def before_train(self, runner):
        if self._loaded is None or runner.iter == 0 or self._loaded[0] != runner.iter:
            return  # not a resumed run
        states = self._loaded[1]
        if states is None:
            print_log('The resumed checkpoint holds no random state (saved without '
                      'mmslak.RandomStateHook): drop path and dropout draw other masks than '
                      'the interrupted run would have', logger='current',
                      level=logging.WARNING)
        elif len(states) != get_world_size():
            print_log(f'The resumed checkpoint holds the random state of {len(states)} '
                      f'processes, this run has {get_world_size()}: not restored, so the run '
                      'is not bit-identical to the interrupted one', logger='current',
                      level=logging.WARNING)
        else:
            _set_random_state(states[get_rank()])
            print_log(f'Restored the random state of iteration {runner.iter}',
                      logger='current')
        self._loaded = None
