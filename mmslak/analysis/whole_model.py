"""Loading a whole mmseg / mmdet model from a checkpoint: all of it, or loudly only what fits."""
from mmslak.engine.runner import check_fit
from mmslak.models.backbones.slak_checkpoint import (convert_official_keys,
                                                     state_dict_from_checkpoint)
from mmslak.utils import check_dtypes, check_finite, load_official_checkpoint


def _fitting(state_dict, model_state):
    """The tensors of ``state_dict`` that the model has, with the model's shapes."""
    return {key: value for key, value in state_dict.items()
            if key in model_state and getattr(value, 'shape', None) == model_state[key].shape}


def load_whole_model(model, filename, strict=True, allow_non_finite=False, opt_out=None,
                     checkpoint=None):
    """Load a whole-model checkpoint into ``model`` (official kernel names are translated).

    Args:
        model (nn.Module): The segmentor or detector.
        filename (str): Path or URL of the checkpoint.
        strict (bool): Refuse a checkpoint with missing, unexpected or mis-shaped tensors.
            False loads the tensors that fit and logs a warning naming the rest, which keep
            their initialisation. Defaults to True.
        allow_non_finite (bool): Load NaN and infinite values (with a warning) instead of
            refusing them. Defaults to False.
        opt_out (str, optional): How the caller's user loads only what fits (e.g. a
            command-line flag), named in the error and the warning. Defaults to None.
        checkpoint (dict, optional): ``filename`` as the caller already read it with
            :func:`mmslak.utils.load_official_checkpoint`; None reads it. Defaults to None.

    Returns:
        dict: The checkpoint, whose ``meta`` may say what the model was trained on.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If it is not a readable checkpoint, holds non-finite values, or (``strict``)
            does not fit the model.
    """
    if checkpoint is None:
        checkpoint = load_official_checkpoint(filename)
    state_dict = convert_official_keys(state_dict_from_checkpoint(checkpoint))
    check_fit(model, state_dict, filename, strict, opt_out)
    model_state = model.state_dict()
    state_dict = _fitting(state_dict, model_state)
    check_dtypes(state_dict, model_state, filename)
    check_finite(state_dict, filename, allow_non_finite)
    model.load_state_dict(state_dict, strict=False)
    return checkpoint
