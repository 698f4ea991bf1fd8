"""Translating a checkpoint's keys into the model's: revised, selected by prefix, renamed."""
import re
from collections import OrderedDict

# What DataParallel and DistributedDataParallel prepend to the keys they save.
STRIP_MODULE = ((r'^module\.', ''), )


def translate_keys(state_dict, prefix='', scopes=(), revise_keys=STRIP_MODULE):
    """The keys of ``state_dict`` as the model names them.

    Each key is revised (``module.`` stripped), kept only if it starts with ``prefix`` (which
    is stripped), and renamed by the format of the scope it falls in (official kernel names to
    mmslak's: :class:`~mmslak.checkpoint.CheckpointFormat`).

    Args:
        state_dict (dict): The weights, keys as in the file.
        prefix (str): Keep only the keys starting with it, e.g. ``'backbone.'``.
            Defaults to ``''``.
        scopes (Sequence[Scope]): Where the model has modules with a registered format
            (:func:`~mmslak.checkpoint.format_scopes`); keys under a scope's prefix are renamed
            by its format, others keep their names. Defaults to none.
        revise_keys (Sequence[tuple[str, str]]): ``(pattern, replacement)`` substitutions applied
            first to every key. Defaults to stripping ``module.``.

    Returns:
        OrderedDict: The translated state dict.

    Raises:
        ValueError: If no key starts with ``prefix``.
    """
    translated = OrderedDict()
    for key, value in state_dict.items():
        for pattern, replacement in revise_keys:
            key = re.sub(pattern, replacement, key)
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        scope = next((scope for scope in scopes if key.startswith(scope.prefix)), None)
        if scope is not None:
            key = scope.prefix + scope.format.rename(key[len(scope.prefix):])
        translated[key] = value
    if not translated:
        sample = ', '.join(list(state_dict)[:3])
        raise ValueError(f'No key of the checkpoint starts with prefix {prefix!r} '
                         f'(its keys look like: {sample})')
    return translated
