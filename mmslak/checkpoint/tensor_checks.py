"""Checks of a checkpoint's tensors before they are loaded: finite values and matching dtypes.

``load_state_dict`` copies NaN and infinite values as they are, and casts an integer or boolean
tensor into a floating-point parameter without a word; both give a model that runs and computes
garbage. The checkpoint pipeline runs these checks before it loads (and the converters before they
write).
"""
import logging

import torch
from mmengine.logging import print_log

from mmslak.utils.messages import short_list


def non_finite_tensors(state_dict):
    """The names of the floating-point tensors that hold a NaN or an infinity.

    Args:
        state_dict (dict): Name to value; values that are not tensors are ignored.

    Returns:
        list[str]: The names, in the order of ``state_dict``.
    """
    return [
        name for name, value in state_dict.items()
        if torch.is_tensor(value) and (value.is_floating_point() or value.is_complex())
        and value.device.type != 'meta' and not bool(torch.isfinite(value).all())
    ]


def check_finite(state_dict, filename, allow_non_finite=False):
    """Refuse a state dict with NaN or infinite values, or log them when they are allowed.

    Args:
        state_dict (dict): The tensors about to be loaded.
        filename (str): The file they come from, for the message.
        allow_non_finite (bool): Load them anyway (deliberately broken weights, e.g. to test a
            recovery path): log a warning instead of raising. Defaults to False.

    Raises:
        ValueError: Naming the file and the tensors, unless ``allow_non_finite``.
    """
    names = non_finite_tensors(state_dict)
    if not names:
        return
    found = (f'{filename} holds NaN or infinite values in {len(names)} tensor(s): '
             f'{short_list(names)}')
    if allow_non_finite:
        print_log(f'{found}; loading them anyway (allow_non_finite=True)', logger='current',
                  level=logging.WARNING)
        return
    raise ValueError(
        f'{found}. A model with these weights computes NaN: use an earlier checkpoint of the '
        'run. To load it deliberately, pass allow_non_finite=True (in '
        "init_cfg=dict(type='Pretrained', ..., allow_non_finite=True)) or the converters' "
        '--allow-non-finite')


def _is_float(tensor):
    return tensor.is_floating_point() or tensor.is_complex()


def check_dtypes(state_dict, model_state_dict, filename):
    """Refuse integer or boolean tensors for the model's floating-point ones.

    ``load_state_dict`` would cast them silently (a layer scale saved as ``int64`` loads as
    zeros). Integer and boolean tensors of the model (BN's ``num_batches_tracked``, sparse
    masks) take what the checkpoint holds.

    Args:
        state_dict (dict): The tensors about to be loaded.
        model_state_dict (dict): The model's state dict, with the same names.
        filename (str): The file ``state_dict`` comes from, for the message.

    Raises:
        ValueError: Naming the file, the tensors and both dtypes.
    """
    wrong = [
        f'{name} ({value.dtype} in the file, {model_state_dict[name].dtype} in the model)'
        for name, value in state_dict.items()
        if torch.is_tensor(value) and torch.is_tensor(model_state_dict.get(name))
        and _is_float(model_state_dict[name]) and not _is_float(value)
    ]
    if wrong:
        raise ValueError(
            f'{filename} holds integer or boolean tensors where the model has floating-point '
            f'ones: {short_list(wrong)}. Loading would cast their values (a fraction becomes 0); '
            'the file was saved wrongly or is not a checkpoint of this model')
