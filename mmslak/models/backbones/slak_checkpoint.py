"""Reading SLaK weights from official and OpenMMLab checkpoints.

Official names are translated to mmslak names: ``LoRA1``/``Decom1`` (k x s) -> ``vertical``,
``LoRA2``/``Decom2`` (s x k) -> ``horizontal``, ``small_conv`` -> ``small``, ``lkb_origin`` and
``lkb_reparam`` (k x k) -> ``square``. Everything else keeps its name.
"""
import re
from collections import OrderedDict

from mmengine.logging import print_log

from mmslak.utils import load_official_checkpoint

OFFICIAL_KEY_RENAMES = (
    (re.compile(r'\.(LoRA1|Decom1)\.'), '.vertical.'),
    (re.compile(r'\.(LoRA2|Decom2)\.'), '.horizontal.'),
    (re.compile(r'\.small_conv\.'), '.small.'),
    (re.compile(r'\.(lkb_origin|lkb_reparam)\.'), '.square.'),
)
# The ImageNet classifier (final norm and head) has no place in a dense-prediction backbone.
CLASSIFIER_KEY = re.compile(r'^(norm|head)\.')
OUT_NORM_KEY = re.compile(r'^norm\d\.')


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


def _likely_causes(backbone, missing, unexpected, mismatched):
    """Human-readable guesses of why a checkpoint does not fit the backbone."""
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
    fused = re.compile(r'\.(vertical|horizontal|square)\.(weight|bias)$')
    if any(fused.search(key) for key in unexpected) and not backbone.deploy:
        causes.append('the checkpoint is in the fused deploy form: build with deploy=True')
    if any(fused.search(key) for key in missing) and backbone.deploy:
        causes.append('the checkpoint is in the training form: build with deploy=False, '
                      'load it, then call switch_to_deploy()')
    if any(re.match(r'stages\.\d+\.\d+\.', key) for key in missing + unexpected):
        causes.append(f'the number of blocks per stage differs (depths {backbone.arch["depths"]})')
    if any(key.startswith('backbone.') for key in unexpected):
        causes.append("the keys start with 'backbone.': load with prefix='backbone.'")
    return causes or ['the checkpoint is not a SLaK backbone of this configuration']


def _short_list(keys, limit=8):
    keys = list(keys)
    shown = ', '.join(str(key) for key in keys[:limit])
    return shown + (f' ... ({len(keys)} in all)' if len(keys) > limit else '')


def load_slak_checkpoint(backbone, filename, prefix=''):
    """Load SLaK weights into ``backbone``, refusing any checkpoint that does not fit.

    Keys that legitimately differ are reported in the log: the ImageNet classifier (``norm``,
    ``head``) and output norms the backbone does not use are skipped, and output norms absent from
    the checkpoint keep their initialisation. Masks of sparse weights absent from the checkpoint are
    derived from its zeros. Any other missing or unexpected key, or a shape mismatch, raises.

    Args:
        backbone (SLaK): The backbone to load into.
        filename (str): Path or URL of the checkpoint.
        prefix (str): Prefix of the backbone's keys, e.g. ``'backbone.'`` for a detector or
            segmentor checkpoint. Defaults to ``''``.

    Raises:
        ValueError: If the checkpoint does not fit the backbone.
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
        details = []
        if mismatched:
            details.append('shape mismatch (checkpoint vs model): ' + _short_list(
                f'{key} {ckpt} vs {model}' for key, ckpt, model in mismatched))
        if missing:
            details.append('missing from the checkpoint: ' + _short_list(missing))
        if unexpected:
            details.append('not in the model: ' + _short_list(unexpected))
        causes = _likely_causes(backbone, missing, unexpected, mismatched)
        raise ValueError(f'Checkpoint {filename} does not fit this SLaK backbone; likely cause: '
                         + '; '.join(causes) + '.\n' + '\n'.join(details))
    for key in skipped:
        state_dict.pop(key)
    backbone.load_state_dict(state_dict, strict=False)
    print_log(f'Loaded {len(state_dict)} SLaK tensors from {filename}', logger='current')
    if skipped:
        print_log(f'Skipped checkpoint keys the backbone does not use: {_short_list(skipped)}',
                  logger='current')
    if fresh_norms:
        print_log('Output norms not in the checkpoint keep their initialisation: '
                  f'{_short_list(fresh_norms)}', logger='current')
