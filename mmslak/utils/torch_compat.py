"""The few torch APIs mmslak uses that changed between torch 2.1 and today.

Each function takes the current API where the installed torch has it and its older form
otherwise, so the rest of mmslak is written once for every supported torch (2.1 and later).
"""
import torch
from packaging.version import Version

TORCH_VERSION = Version(torch.__version__.split('+')[0])


def cpu_autocast_enabled():
    """Whether autocast is on for the CPU (``torch.is_autocast_enabled('cpu')`` from 2.4)."""
    if TORCH_VERSION >= Version('2.4'):
        return torch.is_autocast_enabled('cpu')
    return torch.is_autocast_cpu_enabled()


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
    """A loss scaler for fp16 training on ``device_type`` (``torch.amp.GradScaler`` from 2.3).

    Args:
        device_type (str): ``'cuda'`` or ``'cpu'``.

    Returns:
        GradScaler: The scaler.
    """
    if hasattr(torch.amp, 'GradScaler'):
        return torch.amp.GradScaler(device_type)
    if device_type == 'cuda':
        return torch.cuda.amp.GradScaler()
    return torch.cpu.amp.GradScaler()
