"""SLaK's checkpoint format: official key names, what a pretrained file may hold, likely causes.

Registered with the checkpoint pipeline (:mod:`mmslak.checkpoint`) at import, so every loader and
the runner translate and diagnose SLaK weights without importing the backbone. Official names
are translated to mmslak names: ``LoRA1``/``Decom1`` (k x s) -> ``vertical``, ``LoRA2``/``Decom2``
(s x k) -> ``horizontal``, ``small_conv`` -> ``small``, ``lkb_origin`` and ``lkb_reparam``
(k x k) -> ``square``. Everything else keeps its name.
"""
import re

from mmslak.checkpoint import CheckpointFormat, register_format
from mmslak.models.utils.sparse_masks import MASK_SUFFIX
from mmslak.utils.messages import short_list
from .slak import SLaK

OFFICIAL_KEY_RENAMES = (
    (re.compile(r'\.(LoRA1|Decom1)\.'), '.vertical.'),
    (re.compile(r'\.(LoRA2|Decom2)\.'), '.horizontal.'),
    (re.compile(r'\.small_conv\.'), '.small.'),
    (re.compile(r'\.(lkb_origin|lkb_reparam)\.'), '.square.'),
)
# The ImageNet classifier (final norm and head) has no place in a dense-prediction backbone.
CLASSIFIER_KEY = re.compile(r'^(norm|head)\.')
OUT_NORM_KEY = re.compile(r'^norm\d\.')
# Masks of sparse weights: derived from the zeros of the weights when a checkpoint lacks them.
MASK_KEY = re.compile(re.escape('weight' + MASK_SUFFIX) + '$')
# Keys of the large-kernel branches in the fused deploy form (one biased conv each); the
# training form has a conv and a BN under each branch instead.
FUSED_BRANCH_KEY = re.compile(r'\.(vertical|horizontal|square)\.(weight|bias)$')
BLOCK_KEY = re.compile(r'^stages\.(\d+)\.(\d+)\.')


def _blocks(keys):
    """``{(stage, index): [keys]}`` of the block keys among ``keys``."""
    blocks = {}
    for key in keys:
        match = BLOCK_KEY.match(key)
        if match:
            blocks.setdefault(tuple(map(int, match.groups())), []).append(key)
    return blocks


def _whole_blocks(backbone, missing, unexpected):
    """The blocks missing from the checkpoint as a whole, and the blocks the model lacks."""
    model_blocks = _blocks(key for key in backbone.state_dict() if not MASK_KEY.search(key))
    missing_blocks = _blocks(missing)
    absent = [block for block, keys in missing_blocks.items()
              if set(keys) >= set(model_blocks.get(block, ()))]
    extra = [block for block in _blocks(unexpected) if block not in model_blocks]
    return absent, extra


def _structure_causes(backbone, missing, unexpected, mismatched):
    """Causes read from shapes and key names: widths, kernels, decomposition, deploy form."""
    causes = []
    if any(model[0] != ckpt[0] for _, ckpt, model in mismatched):
        causes.append(f'the channel widths differ (arch dims {backbone.arch["dims"]}, '
                      f'width_factor={backbone.width_factor} give {backbone.channels})')
    if any(len(ckpt) == 4 and model[2:] != ckpt[2:] for _, ckpt, model in mismatched):
        causes.append(f'the kernel sizes differ (kernel_size={backbone.kernel_size})')
    if any('.square.' in key for key in unexpected) and backbone.decompose:
        causes.append('the checkpoint has dense k x k kernels: build with decompose=False')
    if any('.vertical.' in key for key in unexpected) and not backbone.decompose:
        causes.append('the checkpoint has decomposed kernels: build with decompose=True')
    if any(FUSED_BRANCH_KEY.search(key) for key in unexpected) and not backbone.deploy:
        causes.append('the checkpoint is in the fused deploy form: build with deploy=True')
    if any(FUSED_BRANCH_KEY.search(key) for key in missing) and backbone.deploy:
        causes.append('the checkpoint is in the training form: build with deploy=False, '
                      'load it, then call switch_to_deploy()')
    gammas = [key for key in backbone.state_dict() if key.endswith('.gamma')]
    if gammas and set(gammas) <= set(missing):
        causes.append('the checkpoint has no layer scale: build with layer_scale_init_value=0')
    if any(key.endswith('.gamma') for key in unexpected) and not gammas:
        causes.append('the checkpoint has layer scales (gamma): build with '
                      'layer_scale_init_value > 0 (1e-6 as officially)')
    return causes


def likely_causes(backbone, missing, unexpected, mismatched):
    """Human-readable guesses of why a checkpoint does not fit the backbone.

    Args:
        backbone (SLaK): The backbone the checkpoint was loaded into.
        missing (list[str]): Backbone keys absent from the checkpoint.
        unexpected (list[str]): Checkpoint keys the backbone does not have.
        mismatched (list[tuple]): ``(key, checkpoint shape, model shape)`` of shape mismatches.

    Returns:
        list[str]: The causes, most specific first; never empty.
    """
    causes = _structure_causes(backbone, missing, unexpected, mismatched)
    absent, extra = _whole_blocks(backbone, missing, unexpected)
    if absent or extra:
        blocks = ', '.join(f'stages.{stage}.{index}' for stage, index in sorted(absent + extra))
        causes.append(f'the number of blocks per stage differs (depths '
                      f'{backbone.arch["depths"]}; whole blocks missing or extra: {blocks})')
    if any(key.startswith('backbone.') for key in unexpected):
        causes.append("the keys start with 'backbone.': load with prefix='backbone.'")
    if not causes:  # keys unexplained one by one: an incomplete or edited file
        if missing:
            causes.append('single tensors are missing from the checkpoint (an incomplete or '
                          f'edited file): {short_list(missing)}')
        if unexpected:
            causes.append(f'the checkpoint has single tensors the backbone does not: '
                          f'{short_list(unexpected)}')
    return causes or ['the checkpoint is not a SLaK backbone of this configuration']


def is_deploy_form(state_dict):
    """Whether SLaK weights (official or mmslak names) are in the fused deploy form.

    Args:
        state_dict (dict): A backbone's or a whole model's weights.

    Returns:
        bool: True if some large-kernel branch is one biased conv (``reparameterize.py``).
    """
    return any(FUSED_BRANCH_KEY.search(SLAK_CHECKPOINT_FORMAT.rename(key)) for key in state_dict)


SLAK_CHECKPOINT_FORMAT = register_format(CheckpointFormat(
    name='SLaK',
    module_type=SLaK,
    diagnose=likely_causes,
    renames=OFFICIAL_KEY_RENAMES,
    derived=(MASK_KEY, ),
    # an ImageNet file's classifier, output norms of other out_indices, masks of a sparse file
    unused=(CLASSIFIER_KEY, OUT_NORM_KEY, MASK_KEY),
    fresh=(OUT_NORM_KEY, ),
    fresh_name='Output norms'))
