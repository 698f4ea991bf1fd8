"""Loading SLaK backbone weights from any checkpoint, whatever the prefix of its keys."""
from mmslak.models.backbones.slak_checkpoint import load_slak_checkpoint, state_dict_from_checkpoint
from mmslak.utils import load_official_checkpoint

BACKBONE_PREFIX = 'backbone.'


def load_backbone_checkpoint(backbone, filename, allow_non_finite=False):
    """Load the backbone weights of a backbone-only or whole-model checkpoint, strictly.

    Whole-model (mmseg / mmdet) checkpoints are recognised by their ``backbone.`` keys.

    Args:
        backbone (SLaK): The backbone to load into.
        filename (str): Official, converted or OpenMMLab checkpoint.
        allow_non_finite (bool): Load NaN and infinite values (with a warning) instead of
            refusing them. Defaults to False.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not a readable checkpoint, does not fit the backbone or holds
            non-finite values.
    """
    keys = state_dict_from_checkpoint(load_official_checkpoint(filename))
    prefix = BACKBONE_PREFIX if any(key.startswith(BACKBONE_PREFIX) for key in keys) else ''
    load_slak_checkpoint(backbone, filename, prefix, allow_non_finite)
