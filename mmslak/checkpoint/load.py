"""The checkpoint pipeline: read (safely) -> recognise -> translate keys -> check -> load."""
from collections import OrderedDict

from mmengine.logging import print_log

from mmslak.utils.messages import short_list
from .fit import check_fit
from .formats import format_of, format_scopes
from .read import read_checkpoint
from .recognise import BACKBONE_PREFIX, recognise
from .tensor_checks import check_dtypes, check_finite
from .translate import STRIP_MODULE, translate_keys


def _fitting(state_dict, model_state, metadata=None):
    """The tensors of ``state_dict`` that the model has, with the model's shapes.

    ``metadata`` (the modules' versions that ``torch.save`` keeps beside a state dict) goes
    with them, as mmengine's loader keeps it.
    """
    fitting = OrderedDict((key, value) for key, value in state_dict.items()
                          if key in model_state and
                          getattr(value, 'shape', None) == model_state[key].shape)
    if metadata is not None:
        fitting._metadata = metadata
    return fitting


def _log_loaded(checkpoint_format, loaded, mismatch, filename):
    """What a module with a registered format took from its pretrained checkpoint."""
    print_log(f'Loaded {len(loaded)} {checkpoint_format.name} tensors from {filename}',
              logger='current')
    if mismatch.skipped:
        print_log('Skipped checkpoint keys the backbone does not use: '
                  f'{short_list(mismatch.skipped)}', logger='current')
    if mismatch.fresh:
        print_log(f'{checkpoint_format.fresh_name} not in the checkpoint keep their '
                  f'initialisation: {short_list(mismatch.fresh)}', logger='current')


def load_weights(model, filename, strict=True, allow_non_finite=False, opt_out=None,
                 checkpoint=None, prefix='', revise_keys=STRIP_MODULE, map_location='cpu'):
    """Load the checkpoint ``filename`` into ``model`` if it fits; every mmslak loader does.

    The steps: read the file without running its code (:func:`read_checkpoint`), recognise
    where it keeps its weights (:func:`recognise`), translate their keys (``module.``
    stripped, ``prefix`` selected, official kernel names renamed by the registered formats of
    the model's modules), check them (fit, with the likely causes and the keys that do not fit;
    dtypes; finite values) and load them. A module with a registered format (a SLaK backbone)
    takes pretrained checkpoints of it: a classifier and output norms it lacks are skipped, and
    its output norms absent from the file keep their initialisation (both logged). Any other
    model takes whole-model checkpoints.

    Args:
        model (nn.Module): The model (not a wrapper) to load into.
        filename (str): Path or URL of the checkpoint, named in every message.
        strict (bool): Refuse a checkpoint with missing, unexpected or mis-shaped tensors.
            False loads the tensors that fit and logs a warning naming the rest, which keep
            their initialisation. Defaults to True.
        allow_non_finite (bool): Load NaN and infinite values (with a warning) instead of
            refusing them. Defaults to False.
        opt_out (str, optional): How the caller's user loads only what fits (e.g. a
            command-line flag), named in the error and the warning. Defaults to None.
        checkpoint (dict, optional): ``filename`` as the caller already read it with
            :func:`read_checkpoint`; None reads it. Defaults to None.
        prefix (str): Load only the keys under this prefix, stripped, e.g. ``'backbone.'``
            for the backbone of a detector checkpoint; ``'auto'`` takes ``'backbone.'`` if the
            checkpoint is a whole model's and ``''`` otherwise. Defaults to ``''``.
        revise_keys (Sequence[tuple[str, str]]): ``(pattern, replacement)`` applied to every
            key first. Defaults to stripping ``module.``.
        map_location (str | Callable): Where to put the tensors read. Defaults to ``'cpu'``.

    Returns:
        dict: The checkpoint, whose ``meta`` may say what the model was trained on.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a readable checkpoint, has no key under ``prefix``, holds
            non-finite values or integer tensors for floating-point ones, or (``strict``) does
            not fit the model.
    """
    if checkpoint is None:
        checkpoint = read_checkpoint(filename, map_location=map_location)
    layout = recognise(checkpoint)
    if prefix == 'auto':
        prefix = BACKBONE_PREFIX if layout.whole_model else ''
    state_dict = translate_keys(layout.state_dict, prefix, format_scopes(model), revise_keys)
    mismatch = check_fit(model, state_dict, filename, strict, opt_out)
    model_state = model.state_dict()
    # the versions are those of the file's module names: of use while no prefix is stripped
    metadata = None if prefix else getattr(layout.state_dict, '_metadata', None)
    state_dict = _fitting(state_dict, model_state, metadata)
    check_dtypes(state_dict, model_state, filename)
    check_finite(state_dict, filename, allow_non_finite)
    model.load_state_dict(state_dict, strict=False)
    checkpoint_format = format_of(model)
    if checkpoint_format is not None:
        _log_loaded(checkpoint_format, state_dict, mismatch, filename)
    return checkpoint
