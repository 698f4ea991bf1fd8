"""Likely causes of a checkpoint that does not fit: the registered format's, or a whole model's."""
from .formats import format_of, format_scopes
from .recognise import BACKBONE_PREFIX


def _whole_model_causes(model, mismatch):
    """Guesses of why a whole-model checkpoint does not fit ``model``."""
    causes = []
    absent = set(mismatch.missing)
    if any(BACKBONE_PREFIX + key in absent for key in mismatch.unexpected):
        causes.append("it is a backbone-only checkpoint (its keys lack 'backbone.'): load it "
                      'with --cfg-options model.backbone.init_cfg.checkpoint=FILE, not as a '
                      'whole model')
    else:
        for scope in format_scopes(model):
            inside = mismatch.within(scope.prefix)
            if inside:
                label = f'{scope.prefix[:-1]}: ' if scope.prefix else ''
                causes += [label + cause for cause in scope.format.diagnose(
                    scope.module, inside.missing, inside.unexpected, inside.mismatched)]
    heads = sorted({key.split('.')[0] for key, *_ in mismatch.mismatched
                    if not key.startswith(BACKBONE_PREFIX)})
    if heads:
        causes.append(f'{", ".join(heads)} differ in shape (another number of classes or '
                      'channels)')
    return causes or ['the checkpoint is of another model']


def likely_causes(model, mismatch):
    """Human-readable guesses of why a checkpoint does not fit ``model``.

    A module with a registered format (a backbone) is diagnosed by its format; a whole model
    by its layout (a backbone-only file, heads of another shape) and the formats of its modules
    (``backbone: the kernel sizes differ ...``).

    Args:
        model (nn.Module): The model loaded into.
        mismatch (Mismatch): What does not fit.

    Returns:
        list[str]: The causes, most specific first; never empty.
    """
    checkpoint_format = format_of(model)
    if checkpoint_format is not None:
        return checkpoint_format.diagnose(model, mismatch.missing, mismatch.unexpected,
                                          mismatch.mismatched)
    return _whole_model_causes(model, mismatch)
