"""The fit check: refuse a state dict that does not fit the model, naming the keys and causes."""
import logging

from mmengine.logging import print_log

from .diagnosis import likely_causes
from .formats import format_of, format_scopes
from .mismatch import find_mismatch


def _derived_in_scopes(scopes):
    """Whether a model key is one that the module of its scope derives."""

    def derived(key):
        return any(key.startswith(scope.prefix) and
                   scope.format.derives(key[len(scope.prefix):]) for scope in scopes)

    return derived


def model_mismatch(model, state_dict):
    """How ``state_dict`` differs from the state of ``model``.

    A module with a registered format takes a pretrained checkpoint of it: keys the format
    lets such a file hold besides (an ImageNet classifier) are skipped, keys it lets the file
    lack keep their initialisation. Any other model takes a whole-model checkpoint, all of it.
    Keys that a module derives when they are absent (sparse-weight masks) are never missing.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict): The tensors to load, translated (keys as in ``model.state_dict()``).

    Returns:
        Mismatch: What does not fit.
    """
    checkpoint_format = format_of(model)
    if checkpoint_format is None:
        return find_mismatch(model.state_dict(), state_dict,
                             derived=_derived_in_scopes(format_scopes(model)))
    return find_mismatch(model.state_dict(), state_dict, derived=checkpoint_format.derives,
                         unused=checkpoint_format.skips, fresh=checkpoint_format.keeps_fresh)


def check_fit(model, state_dict, filename, strict=True, opt_out=None):
    """Refuse a state dict that does not fit ``model``, or warn and let what fits load.

    Args:
        model (nn.Module): The model to load into.
        state_dict (dict): The tensors to load, translated (keys as in ``model.state_dict()``).
        filename (str): The file they come from, for the message.
        strict (bool): Raise on any missing, unexpected or mis-shaped tensor; False logs a
            warning and the caller loads what fits. Defaults to True.
        opt_out (str, optional): How the user loads only what fits (e.g. ``'--no-strict'``),
            named in the error and the warning. Defaults to None.

    Returns:
        Mismatch: What does not fit (nothing, or what a non-strict load leaves out).

    Raises:
        ValueError: If ``strict`` and the state dict does not fit, naming the file, the likely
            causes and the keys.
    """
    mismatch = model_mismatch(model, state_dict)
    if not mismatch:
        return mismatch
    checkpoint_format = format_of(model)
    target = 'the model' if checkpoint_format is None else f'this {checkpoint_format.name} backbone'
    message = mismatch.describe(filename, target, likely_causes(model, mismatch))
    if strict:
        raise ValueError(message + (f'\nTo load only what fits (the rest of the model then keeps '
                                    f'its initialisation), pass {opt_out}' if opt_out else ''))
    print_log(f'{opt_out or "Not strict"}: loading only what fits, the rest of the model keeps '
              'its initialisation. ' + message, logger='current', level=logging.WARNING)
    return mismatch
