"""Recognising a checkpoint's layout: where its weights are, whether they are a whole model's."""
import re
from dataclasses import dataclass
from typing import Optional

# The entries that hold the weights, in the order they are looked for: ImageNet training scripts
# (official SLaK, ConvNeXt, DeiT) save them under 'model' ('model_ema' beside it is a separate
# average, not used), OpenMMLab under 'state_dict', DeepSpeed under 'module'.
WEIGHT_ENTRIES = ('model', 'state_dict', 'module')
# The prefix of the backbone's keys in a whole mmseg, mmdet or mmpretrain model.
BACKBONE_PREFIX = 'backbone.'


@dataclass(frozen=True)
class Layout:
    """Where a checkpoint keeps its weights.

    Args:
        entry (str, optional): The entry holding them (one of :data:`WEIGHT_ENTRIES`), or None
            for a bare state dict.
        state_dict (dict): The weights, keys as in the file.
    """

    entry: Optional[str]
    state_dict: dict

    @property
    def whole_model(self):
        """Whether the weights are a whole model's (its backbone's keys under ``backbone.``)."""
        return any(re.sub(r'^module\.', '', key).startswith(BACKBONE_PREFIX)
                   for key in self.state_dict)


def recognise(checkpoint):
    """The layout of a checkpoint of any official or OpenMMLab kind.

    Args:
        checkpoint (dict): The checkpoint as read.

    Returns:
        Layout: Its layout; a bare state dict is its own weights.

    Raises:
        TypeError: If the checkpoint is not a dict.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'A checkpoint must be a dict, got {type(checkpoint).__name__}')
    for entry in WEIGHT_ENTRIES:
        if isinstance(checkpoint.get(entry), dict):
            return Layout(entry, checkpoint[entry])
    return Layout(None, checkpoint)
