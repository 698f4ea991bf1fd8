"""The backend of a GPU call chosen by measurement, as ``torch.backends.cudnn.benchmark`` does.

Under ``MMSLAK_OPS=auto`` the first call of an op per key (op, direction, shapes, dtype,
layout) times each candidate (the triton kernels, PyTorch on the NCHW input, PyTorch on a
channels-last copy, which cuDNN takes) and keeps the fastest for the process; with
``MMSLAK_OPS_CACHE=FILE`` the choices are also read from and written to that JSON file, so that
later processes skip the measurement. A call can thus never be slower than the fastest
candidate by more than its one measurement.
"""
import json
import logging
import os
import os.path as osp
import statistics
import time

import torch
from mmengine.logging import print_log

from .backend import memory_format_of


def cuda_timer(fn, runs=3):
    """Median seconds of ``fn()`` over ``runs`` calls after one warm-up, on the current stream."""
    fn()
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class MeasuredChoice:
    """The fastest candidate per key, measured once.

    Args:
        timer (Callable[[Callable], float]): Seconds one call of a candidate takes.
            Defaults to :func:`cuda_timer`.
        cache_file (str, optional): A JSON file of earlier choices, read at the first lookup and
            rewritten after each measurement. Defaults to ``$MMSLAK_OPS_CACHE`` (none if unset).
    """

    def __init__(self, timer=cuda_timer, cache_file=None):
        self.timer = timer
        self.cache_file = cache_file if cache_file is not None else os.environ.get(
            'MMSLAK_OPS_CACHE')
        self._choices = None

    @property
    def choices(self):
        """``{key: backend}`` of this process (and of the cache file)."""
        if self._choices is None:
            self._choices = {}
            if self.cache_file and osp.isfile(self.cache_file):
                with open(self.cache_file) as cache:
                    self._choices = json.load(cache)
        return self._choices

    def pick(self, key, candidates):
        """The name of the fastest of ``candidates`` for ``key``.

        Args:
            key (str): What the choice holds for.
            candidates (dict[str, Callable[[], Any]]): Each candidate's call.

        Returns:
            str: A key of ``candidates``.
        """
        choice = self.choices.get(key)
        if choice in candidates:
            return choice
        seconds = {name: self.timer(fn) for name, fn in candidates.items()}
        choice = min(seconds, key=seconds.get)
        self.choices[key] = choice
        timings = ', '.join(f'{name} {value * 1e3:.3f} ms' for name, value in seconds.items())
        print_log(f'mmslak.ops: {key}: {choice} ({timings})', logger='current',
                  level=logging.DEBUG)
        if self.cache_file:
            with open(self.cache_file, 'w') as cache:
                json.dump(self.choices, cache, indent=1, sort_keys=True)
        return choice


MEASURED = MeasuredChoice()


def call_key(op, direction, x, kernels):
    """The key of a call: op, direction, input shape, dtype, layout and kernel shapes."""
    layout = 'channels_last' if memory_format_of(x) is torch.channels_last else 'nchw'
    shapes = 'x'.join(map(str, x.shape))
    kernel_shapes = ','.join(f'{k.shape[2]}x{k.shape[3]}' for k in kernels)
    return f'{op}/{direction}/{shapes}/{str(x.dtype).split(".")[-1]}/{layout}/{kernel_shapes}'
