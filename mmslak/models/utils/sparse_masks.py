"""Binary masks that keep sparse weights sparse during fine-tuning.

Every 2-D and 4-D ``weight`` of a module gets a boolean ``weight_mask`` buffer beside it, so the
masks travel with the state dict (train, val, test and resume alike). A state dict without masks
(an official or converted checkpoint) gets them from the zeros of its own weights when loaded.
"""
import torch

MASK_SUFFIX = '_mask'


def add_weight_masks(module):
    """Register a ``weight_mask`` buffer (all True) beside every 2-D and 4-D weight."""
    for submodule in module.modules():
        weight = submodule._parameters.get('weight')
        if weight is not None and weight.dim() in (2, 4):
            submodule.register_buffer('weight' + MASK_SUFFIX,
                                      torch.ones_like(weight, dtype=torch.bool))


def iter_masked_weights(module):
    """Yield ``(name, weight, mask)`` for every weight of ``module`` that has a mask."""
    for name, submodule in module.named_modules():
        mask = submodule._buffers.get('weight' + MASK_SUFFIX)
        if mask is not None:
            yield name, submodule.weight, mask


@torch.no_grad()
def apply_weight_masks(module):
    """Zero the masked-out entries of every masked weight, in place."""
    for _, weight, mask in iter_masked_weights(module):
        weight.mul_(mask)


def fill_missing_masks(state_dict, prefix, mask_keys):
    """Derive absent masks from the zeros of the weights in ``state_dict`` (in place).

    Args:
        state_dict (dict): The state dict being loaded.
        prefix (str): The prefix of the module's keys in ``state_dict``.
        mask_keys (Iterable[str]): The module's mask keys, without prefix.
    """
    for key in mask_keys:
        weight_key = prefix + key[:-len(MASK_SUFFIX)]
        if prefix + key not in state_dict and weight_key in state_dict:
            state_dict[prefix + key] = state_dict[weight_key] != 0


def density_by_prefix(module, prefixes):
    """Fraction of non-zero mask entries among the weights under each name prefix.

    Args:
        module (nn.Module): Module with masked weights.
        prefixes (dict[str, tuple[str]]): Group name to the name prefixes it covers.

    Returns:
        dict[str, float]: Density per group that has masked weights.
    """
    kept, total = {}, {}
    for name, _, mask in iter_masked_weights(module):
        for group, group_prefixes in prefixes.items():
            if name.startswith(group_prefixes):
                kept[group] = kept.get(group, 0) + int(mask.sum())
                total[group] = total.get(group, 0) + mask.numel()
    return {group: kept[group] / total[group] for group in total}
