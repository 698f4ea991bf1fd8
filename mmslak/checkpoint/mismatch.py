"""How a state dict differs from a model's: one comparison, one listing of the keys."""
from dataclasses import dataclass, field

from mmslak.utils.messages import short_list


def _never(key):
    return False


@dataclass
class Mismatch:
    """The keys of a checkpoint that do not fit a model, and those allowed not to.

    Args:
        missing (list[str]): Keys of the model that the checkpoint lacks.
        unexpected (list[str]): Keys of the checkpoint that the model lacks.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)``.
        skipped (list[str]): Keys of the checkpoint that the model does not take and need
            not (a pretrained file's classifier). Defaults to none.
        fresh (list[str]): Keys of the model that the checkpoint need not hold; they keep
            their initialisation. Defaults to none.
    """

    missing: list
    unexpected: list
    mismatched: list
    skipped: list = field(default_factory=list)
    fresh: list = field(default_factory=list)

    def __bool__(self):
        """Whether anything does not fit."""
        return bool(self.missing or self.unexpected or self.mismatched)

    def within(self, prefix):
        """The part of the mismatch under ``prefix``, with ``prefix`` stripped from the keys."""
        inside = [[key[len(prefix):] for key in keys if key.startswith(prefix)]
                  for keys in (self.missing, self.unexpected)]
        shapes = [(key[len(prefix):], ckpt, own) for key, ckpt, own in self.mismatched
                  if key.startswith(prefix)]
        return Mismatch(*inside, shapes)

    def details(self):
        """Lines listing the keys that do not fit, kind by kind (one per kind that occurs)."""
        lines = []
        if self.mismatched:
            lines.append('shape mismatch (checkpoint vs model): ' + short_list(
                f'{key} {ckpt} vs {own}' for key, ckpt, own in self.mismatched))
        if self.missing:
            lines.append('missing from the checkpoint: ' + short_list(self.missing))
        if self.unexpected:
            lines.append('not in the model: ' + short_list(self.unexpected))
        return lines

    def describe(self, filename, target, causes):
        """The message naming the file, what it does not fit, the likely causes and the keys.

        Args:
            filename (str): The checkpoint.
            target (str): What it was loaded into, e.g. ``'the model'``.
            causes (list[str]): The likely causes.

        Returns:
            str: The message.
        """
        return '\n'.join([f'Checkpoint {filename} does not fit {target}; likely cause: ' +
                          '; '.join(causes) + '.'] + self.details())


def find_mismatch(model_state, state_dict, derived=_never, unused=_never, fresh=_never):
    """Compare the tensors to load with the state of the model.

    Args:
        model_state (dict): The model's state dict.
        state_dict (dict): The tensors to load, keys as in ``model_state``.
        derived (Callable[[str], bool]): Model keys the model derives when the checkpoint
            lacks them: neither missing nor fresh. Defaults to none.
        unused (Callable[[str], bool]): Checkpoint keys the model lacks and need not take:
            skipped, not unexpected. Defaults to none.
        fresh (Callable[[str], bool]): Model keys the checkpoint need not hold: fresh, not
            missing. Defaults to none.

    Returns:
        Mismatch: The keys, in the order of the state dicts.
    """
    skipped = [key for key in state_dict if key not in model_state and unused(key)]
    unexpected = [key for key in state_dict if key not in model_state and not unused(key)]
    absent = [key for key in model_state if key not in state_dict and not derived(key)]
    mismatched = [(key, tuple(value.shape), tuple(model_state[key].shape))
                  for key, value in state_dict.items()
                  if key in model_state and hasattr(value, 'shape') and
                  value.shape != model_state[key].shape]
    return Mismatch(missing=[key for key in absent if not fresh(key)], unexpected=unexpected,
                    mismatched=mismatched, skipped=skipped,
                    fresh=[key for key in absent if fresh(key)])
