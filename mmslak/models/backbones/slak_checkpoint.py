"""Reading SLaK weights from official and OpenMMLab checkpoints.

Official names are translated to mmslak names: ``LoRA1``/``Decom1`` (k x s) -> ``vertical``,
``LoRA2``/``Decom2`` (s x k) -> ``horizontal``, ``small_conv`` -> ``small``, ``lkb_origin`` and
``lkb_reparam`` (k x k) -> ``square``. Everything else keeps its name.
"""
import re
from collections import OrderedDict

from mmengine.logging import print_log

from mmslak.utils import load_official_checkpoint
from mmslak.utils.checkpoint_checks import check_dtypes, check_finite, mismatch_details, short_list

OFFICIAL_KEY_RENAMES = (
    (re.compile(r'\.(LoRA1|Decom1)\.'), '.vertical.'),
    (re.compile(r'\.(LoRA2|Decom2)\.'), '.horizontal.'),
    (re.compile(r'\.small_conv\.'), '.small.'),
    (re.compile(r'\.(lkb_origin|lkb_reparam)\.'), '.square.'),
)
# The ImageNet classifier (final norm and head) has no place in a dense-prediction backbone.
CLASSIFIER_KEY = re.compile(r'^(norm|head)\.')
OUT_NORM_KEY = re.compile(r'^norm\d\.')
# Keys of the large-kernel branches in the fused deploy form (one biased conv each); the
# training form has a conv and a BN under each branch instead.
FUSED_BRANCH_KEY = re.compile(r'\.(vertical|horizontal|square)\.(weight|bias)$')


def state_dict_from_checkpoint(checkpoint):
    """The state dict inside a checkpoint of any official or OpenMMLab layout.

    ImageNet files keep the weights under ``model`` (``model_ema`` is a separate average and is not
    used), OpenMMLab files under ``state_dict``; a bare state dict is returned as it is.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'A checkpoint must be a dict, got {type(checkpoint).__name__}')
    for key in ('model', 'state_dict', 'module'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def convert_official_keys(state_dict, prefix=''):
    """Select the keys under ``prefix``, strip it and ``module.``, and rename official keys.

    Args:
        state_dict (dict): Official or mmslak state dict.
        prefix (str): Keep only keys starting with this prefix (e.g. ``'backbone.'``), stripped.

    Returns:
        OrderedDict: The state dict in mmslak naming.
    """
    converted = OrderedDict()
    for key, value in state_dict.items():
        key = re.sub(r'^module\.', '', key)
        if not key.startswith(prefix):
            continue
        key = key[len(prefix):]
        for pattern, replacement in OFFICIAL_KEY_RENAMES:
            key = pattern.sub(replacement, key)
        converted[key] = value
    if not converted:
        sample = ', '.join(list(state_dict)[:3])
        raise ValueError(f'No key of the checkpoint starts with prefix {prefix!r} '
                         f'(its keys look like: {sample})')
    return converted


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
    model_blocks = _blocks(key for key in backbone.state_dict() if not key.endswith('weight_mask'))
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


def load_slak_checkpoint(backbone, filename, prefix='', allow_non_finite=False):
    """Load SLaK weights into ``backbone``, refusing any checkpoint that does not fit.

    Keys that legitimately differ are reported in the log: the ImageNet classifier (``norm``,
    ``head``) and output norms the backbone does not use are skipped, and output norms absent from
    the checkpoint keep their initialisation. Masks of sparse weights absent from the checkpoint are
    derived from its zeros. Any other missing or unexpected key, a shape mismatch, an integer
    tensor for a floating-point one, or a NaN or infinite value raises.

    Args:
        backbone (SLaK): The backbone to load into.
        filename (str): Path or URL of the checkpoint.
        prefix (str): Prefix of the backbone's keys, e.g. ``'backbone.'`` for a detector or
            segmentor checkpoint. Defaults to ``''``.
        allow_non_finite (bool): Load NaN and infinite values (with a warning) instead of
            refusing them. Defaults to False.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If the file is not a readable checkpoint, does not fit the backbone or holds
            non-finite values.
    """
    state_dict = convert_official_keys(
        state_dict_from_checkpoint(load_official_checkpoint(filename)), prefix)
    model_state = backbone.state_dict()
    skipped = [key for key in state_dict if key not in model_state and (
        CLASSIFIER_KEY.match(key) or OUT_NORM_KEY.match(key) or key.endswith('weight_mask'))]
    unexpected = [key for key in state_dict if key not in model_state and key not in skipped]
    absent = [key for key in model_state if key not in state_dict]
    fresh_norms = [key for key in absent if OUT_NORM_KEY.match(key)]
    missing = [key for key in absent if key not in fresh_norms and not key.endswith('weight_mask')]
    mismatched = [(key, tuple(state_dict[key].shape), tuple(model_state[key].shape))
                  for key in state_dict
                  if key in model_state and state_dict[key].shape != model_state[key].shape]
    if missing or unexpected or mismatched:
        causes = likely_causes(backbone, missing, unexpected, mismatched)
        raise ValueError(f'Checkpoint {filename} does not fit this SLaK backbone; likely cause: '
                         + '; '.join(causes) + '.\n' +
                         '\n'.join(mismatch_details(missing, unexpected, mismatched)))
    for key in skipped:
        state_dict.pop(key)
    check_dtypes(state_dict, model_state, filename)
    check_finite(state_dict, filename, allow_non_finite)
    backbone.load_state_dict(state_dict, strict=False)
    print_log(f'Loaded {len(state_dict)} SLaK tensors from {filename}', logger='current')
    if skipped:
        print_log(f'Skipped checkpoint keys the backbone does not use: {short_list(skipped)}',
                  logger='current')
    if fresh_norms:
        print_log('Output norms not in the checkpoint keep their initialisation: '
                  f'{short_list(fresh_norms)}', logger='current')
