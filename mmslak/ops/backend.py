"""Which backend computes each call of mmslak's ops: the ``MMSLAK_OPS`` switch and one rule.

Backends:

- ``torch``: the reference. Plain ``F.conv2d`` / ``F.batch_norm`` / ``F.linear`` / ``F.gelu``,
  differentiable, traceable and exportable; what runs where no other backend applies.
- ``cpu``: float32 (and, for inference, bfloat16) CPU tensors. The large depthwise kernels run
  through the AVX-512 or AVX2 C kernels of :mod:`mmslak.ops.cpu` on channels-last inputs, the
  linear layers through oneDNN with their GELU, bias and residual in the epilogue, weights packed
  once (see :mod:`mmslak.ops.weight_cache`). They exist because PyTorch's own CPU paths run
  SLaK's long depthwise kernels far below the FMA rate and differentiate them an order of
  magnitude slower still (``benchmark.py --op``). SLaK-T, 512 x 512, 2 threads of an AMD EPYC
  (AVX2), on 2026-12-03: inference 758-854 ms on ``auto`` against 973-1199 ms on ``torch``
  (1.3-1.4x; 2.8x against a plain NCHW copy of the official code), a training step at batch 2
  5.9-6.3 s against 12.8-14.6 s (2.2-2.3x).
- ``triton``: the large depthwise op for CUDA tensors in float32, float16 and bfloat16
  (:mod:`mmslak.ops.triton`), where PyTorch runs its generic depthwise kernel on NCHW inputs
  (cuDNN takes only channels-last ones). Under ``auto`` it is chosen per kind of call by
  measurement against PyTorch on NCHW and on channels-last (:mod:`mmslak.ops.measure`). An op
  a backend does not implement (``block_mlp`` on ``triton``) runs on ``torch``.

``MMSLAK_OPS`` (read when :mod:`mmslak.ops` is imported) or :func:`use_ops` (a context manager,
for benchmarks, export and tests) selects:

- ``auto`` (the default): each call takes the ``cpu`` backend where it can compute it (the
  device, dtype, layout, availability of oneDNN and the C kernels, autocast and whether autograd
  must record the call decide; see each op); on CUDA the measured fastest of ``triton`` and
  ``torch``; else ``torch``.
- ``torch``: always the reference.
- ``cpu`` or ``triton``: that backend for the ops it implements, raising ``ValueError`` with the
  reason where it cannot compute a call (``triton`` takes CPU tensors only when forced, under
  ``TRITON_INTERPRET=1``).

``MMSLAK_CPU_KERNEL`` picks the C kernels' instruction set (:mod:`mmslak.ops.cpu.kernel_library`).
"""
import contextlib
import os

import torch

BACKENDS = ('auto', 'torch', 'cpu', 'triton')


def _checked(choice, source):
    if choice not in BACKENDS:
        raise ValueError(f'{source} must be one of {", ".join(BACKENDS)}, got {choice!r}')
    return choice


class _Switch:
    """The process-wide choice; a plain attribute, which ``torch.compile`` reads as a constant."""
    choice = _checked(os.environ.get('MMSLAK_OPS', 'auto'), 'MMSLAK_OPS')


def requested_backend():
    """The backend asked for: ``'auto'``, ``'torch'`` or ``'cpu'``."""
    return _Switch.choice


@contextlib.contextmanager
def use_ops(backend):
    """Compute mmslak's ops with ``backend`` inside the block (process-wide, not per thread).

    Args:
        backend (str): ``'auto'``, ``'torch'`` or ``'cpu'``.

    Example:
        >>> with use_ops('torch'):  # the reference, e.g. for a benchmark's baseline
        ...     outs = model(x)
    """
    previous = _Switch.choice
    _Switch.choice = _checked(backend, 'use_ops(backend)')
    try:
        yield
    finally:
        _Switch.choice = previous


def needs_grad(*tensors):
    """Whether autograd records a call on ``tensors`` (None entries ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def select(op, candidates):
    """The one selection rule: the backend that computes this call of ``op``.

    Args:
        op (str): The op's name, for the error.
        candidates (dict[str, Callable[[], str | None]]): For each backend other than ``torch``
            that implements ``op``, in order of preference, why it cannot compute this call (or
            None if it can); called only when the choice depends on it.

    Returns:
        str: ``'torch'`` or a key of ``candidates``.

    Raises:
        ValueError: If a backend is forced that implements ``op`` and cannot compute the call.
    """
    choice = _Switch.choice
    if choice == 'torch':
        return 'torch'
    if choice != 'auto':
        if choice not in candidates:  # the forced backend has no such op: the reference
            return 'torch'
        why = candidates[choice]()
        if why is not None:
            raise ValueError(f'MMSLAK_OPS={choice}, but the {choice} backend cannot compute {op} '
                             f"here: {why}; use MMSLAK_OPS=auto (or mmslak.ops.use_ops('auto')) "
                             'to fall back to torch')
        return choice
    return next((name for name, why in candidates.items() if why() is None), 'torch')


def preferred_memory_format(x):
    """The layout a network should give ``x`` for these ops: channels-last on the CPU unless the
    reference is forced (the CPU backend's kernels and NHWC views want it); None to keep its
    own."""
    if _Switch.choice != 'torch' and x.device.type == 'cpu':
        return torch.channels_last
    return None


def memory_format_of(x):
    """The memory format of a 4-D tensor: channels-last only if that is its layout, not NCHW's
    (a tensor with a single pixel or channel is both)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format
