"""The registry of checkpoint formats: what a model family tells the checkpoint pipeline.

The pipeline (:mod:`mmslak.checkpoint`) knows no model. A model family registers a
:class:`CheckpointFormat` for its module class (SLaK's is in
:mod:`mmslak.models.backbones.slak_checkpoint`): how the key names of its official files become
mmslak's, which keys it derives itself, what a pretrained file of it may hold besides its weights,
and why a checkpoint may not fit it. Every loader and the runner look these up by the modules of
the model they load into, so none of them imports a model.
"""
from dataclasses import dataclass
from typing import Callable, NamedTuple

_FORMATS = {}  # module class -> CheckpointFormat


def _searched(patterns, key):
    return any(pattern.search(key) for pattern in patterns)


@dataclass(frozen=True)
class CheckpointFormat:
    """What the checkpoint pipeline knows of one module class and its files.

    Args:
        name (str): The family's name in messages, e.g. ``'SLaK'``.
        module_type (type): The module class (subclasses included) whose weights these are.
        diagnose (Callable): ``diagnose(module, missing, unexpected, mismatched)``: the likely
            causes of a checkpoint that does not fit ``module``, most specific first; never
            empty. ``mismatched`` holds ``(key, checkpoint shape, model shape)``.
        renames (tuple[tuple[re.Pattern, str]]): ``(pattern, replacement)`` substitutions that
            turn the key names of official files into the module's. Defaults to none.
        derived (tuple[re.Pattern]): Keys of the module that it derives itself when a
            checkpoint lacks them (sparse-weight masks). Defaults to none.
        unused (tuple[re.Pattern]): Keys that a pretrained checkpoint of the module may hold
            and the module does not take (an ImageNet classifier); skipped, with a log line.
            Defaults to none.
        fresh (tuple[re.Pattern]): Keys of the module that a pretrained checkpoint may lack;
            they keep their initialisation, with a log line. Defaults to none.
        fresh_name (str): What the ``fresh`` keys are, for that log line. Defaults to
            ``'Keys'``.
    """

    name: str
    module_type: type
    diagnose: Callable
    renames: tuple = ()
    derived: tuple = ()
    unused: tuple = ()
    fresh: tuple = ()
    fresh_name: str = 'Keys'

    def rename(self, key):
        """``key`` with the official names of this format replaced by the module's."""
        for pattern, replacement in self.renames:
            key = pattern.sub(replacement, key)
        return key

    def derives(self, key):
        """Whether the module derives ``key`` when a checkpoint lacks it."""
        return _searched(self.derived, key)

    def skips(self, key):
        """Whether a pretrained checkpoint may hold ``key`` that the module does not take."""
        return _searched(self.unused, key)

    def keeps_fresh(self, key):
        """Whether ``key`` may be absent from a pretrained checkpoint."""
        return _searched(self.fresh, key)


class Scope(NamedTuple):
    """A module of a model that has a registered format, and the prefix of its keys.

    ``module`` is None where keys are translated without a model (the converters).
    """

    prefix: str
    module: object
    format: CheckpointFormat


def register_format(checkpoint_format):
    """Register ``checkpoint_format`` for its ``module_type``, replacing an earlier one.

    Args:
        checkpoint_format (CheckpointFormat): The format.

    Returns:
        CheckpointFormat: ``checkpoint_format``.
    """
    _FORMATS[checkpoint_format.module_type] = checkpoint_format
    return checkpoint_format


def format_of(module):
    """The format registered for the class of ``module`` or its nearest base class, or None."""
    for cls in type(module).__mro__:
        if cls in _FORMATS:
            return _FORMATS[cls]
    return None


def format_scopes(model):
    """The outermost modules of ``model`` (``model`` itself included) with a registered format.

    Args:
        model (nn.Module): The model.

    Returns:
        list[Scope]: E.g. ``[Scope('backbone.', <SLaK>, <SLaK format>)]`` for a segmentor, or
        ``[Scope('', ...)]`` for a SLaK backbone itself.
    """
    scopes = []
    for name, module in model.named_modules():
        prefix = f'{name}.' if name else ''
        if any(prefix.startswith(scope.prefix) for scope in scopes):
            continue
        checkpoint_format = format_of(module)
        if checkpoint_format is not None:
            scopes.append(Scope(prefix, module, checkpoint_format))
    return scopes
