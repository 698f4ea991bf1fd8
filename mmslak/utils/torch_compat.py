"""The few torch APIs mmslak uses that changed between torch 2.1 and today.

Each function takes the current API where the installed torch has it and its older form
otherwise, so the rest of mmslak is written once for every supported torch (2.1 and later). The
version checks run once, at import: the functions stay traceable by ``torch.compile``.
"""
import contextlib
import functools
import inspect

import torch
from packaging.version import Version

TORCH_VERSION = Version(torch.__version__.split('+')[0])
# torch.is_autocast_enabled(device_type): 2.4
_AUTOCAST_QUERY_TAKES_DEVICE = TORCH_VERSION >= Version('2.4')
# torch.onnx.export(dynamo=...): 2.5; before it, the TorchScript exporter is the only one
_ONNX_EXPORT_HAS_DYNAMO = 'dynamo' in inspect.signature(torch.onnx.export).parameters


def cpu_autocast_enabled():
    """Whether autocast is on for the CPU (``torch.is_autocast_enabled('cpu')`` from 2.4)."""
    if _AUTOCAST_QUERY_TAKES_DEVICE:
        return torch.is_autocast_enabled('cpu')
    return torch.is_autocast_cpu_enabled()


def cuda_autocast_dtype():
    """The dtype CUDA autocast computes convolutions in, or None where it is off
    (``torch.get_autocast_dtype('cuda')`` from 2.4, ``torch.get_autocast_gpu_dtype()`` before)."""
    if _AUTOCAST_QUERY_TAKES_DEVICE:
        return torch.get_autocast_dtype('cuda') if torch.is_autocast_enabled('cuda') else None
    return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None


def autocast_supports(device_type, dtype):
    """Whether ``torch.autocast(device_type, dtype)`` runs here (CPU float16: torch 2.3 on).

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'``.
        dtype (torch.dtype): The autocast precision.

    Returns:
        bool: True if the autocast context can be entered.
    """
    try:
        with torch.autocast(device_type, dtype):
            return True
    except RuntimeError:  # e.g. "AutocastCPU only support Bfloat16" (torch < 2.3)
        return False


def autocast(device_type, dtype, enabled):
    """``torch.autocast(device_type, dtype)`` if ``enabled``, else no context at all.

    torch < 2.3 refuses a CPU autocast context of any dtype but bfloat16 even when disabled.

    Args:
        device_type (str): ``'cpu'`` or ``'cuda'``.
        dtype (torch.dtype): The autocast precision.
        enabled (bool): Whether to autocast.

    Returns:
        contextlib.AbstractContextManager: The context.
    """
    return torch.autocast(device_type, dtype) if enabled else contextlib.nullcontext()


def register_load_state_dict_pre_hook(module, hook):
    """Call ``hook(module, state_dict, prefix, ...)`` before ``module`` loads a state dict.

    Args:
        module (nn.Module): The module whose ``load_state_dict`` runs the hook.
        hook (Callable): Takes the module, then ``load_state_dict``'s hook arguments
            (``state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
            error_msgs``).

    Returns:
        RemovableHandle: Removes the hook.
    """
    if hasattr(module, 'register_load_state_dict_pre_hook'):  # public from torch 2.5
        return module.register_load_state_dict_pre_hook(hook)
    return module._register_load_state_dict_pre_hook(hook, with_module=True)


def grad_scaler(device_type):
    """A loss scaler for float16 training on ``device_type`` (``torch.amp.GradScaler``, 2.3).

    Args:
        device_type (str): ``'cuda'`` or ``'cpu'``.

    Returns:
        GradScaler: The scaler.

    Raises:
        RuntimeError: On the CPU with torch < 2.3, which has no CPU loss scaler.
    """
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler(device_type)
    if device_type == 'cuda':
        return torch.cuda.amp.GradScaler()
    raise RuntimeError(f'torch {TORCH_VERSION} has no loss scaler for float16 training on the '
                       'CPU (torch.amp.GradScaler, torch >= 2.3); train in bfloat16')


def torchscript_onnx_export(*args, **kwargs):
    """``torch.onnx.export`` with the TorchScript exporter (``dynamo=False`` where torch has it).

    Args:
        *args: Positional arguments of ``torch.onnx.export``.
        **kwargs: Its keyword arguments.
    """
    if _ONNX_EXPORT_HAS_DYNAMO:
        kwargs['dynamo'] = False
    return torch.onnx.export(*args, **kwargs)


def add_step_hooks(optimizer, before=None, after=None):
    """Call ``before`` and ``after`` around each ``optimizer.step()`` of this optimizer.

    torch's ``register_step_pre_hook``/``register_step_post_hook`` stop firing on torch 2.1 once
    ``torch.compile`` has run anywhere in the process (dynamo re-wraps the optimizer classes'
    ``step``); a wrapper on the instance is unaffected, on every torch.

    Args:
        optimizer (torch.optim.Optimizer): The optimizer.
        before (Callable, optional): ``before(optimizer, args, kwargs)``, with the arguments of
            ``step``, before it runs. Defaults to None.
        after (Callable, optional): ``after(optimizer, args, kwargs)`` after it ran. Defaults to
            None.

    Returns:
        Callable[[], None]: Removes the hooks.
    """
    previous = optimizer.__dict__.get('step')
    step = optimizer.step

    @functools.wraps(step)
    def hooked_step(*args, **kwargs):
        if before is not None:
            before(optimizer, args, kwargs)
        result = step(*args, **kwargs)
        if after is not None:
            after(optimizer, args, kwargs)
        return result

    optimizer.step = hooked_step

    def remove():
        if optimizer.__dict__.get('step') is hooked_step:
            if previous is None:
                del optimizer.step
            else:
                optimizer.step = previous

    return remove
