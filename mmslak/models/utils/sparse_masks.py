"""Binary masks that keep sparse weights sparse, fixed (fine-tuning) or moving (sparse training).

Every 2-D and 4-D ``weight`` of a module gets a boolean ``weight_mask`` buffer beside it, so the
masks travel with the state dict (train, val, test and resume alike). A state dict without masks
(an official or converted checkpoint) gets them from the zeros of its own weights when loaded.
The mask algorithms of dynamic sparsity (ERK densities, SNIP, exact prune and regrow) live here
too.
"""
import math

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
def apply_masks(masked):
    """Zero the masked-out entries of weights, in place: the one place masks are applied.

    Args:
        masked (Iterable[tuple[torch.Tensor, torch.Tensor]]): ``(weight, mask)`` pairs.
    """
    for weight, mask in masked:
        weight.mul_(mask)


def apply_weight_masks(module):
    """Zero the masked-out entries of every masked weight of ``module``, in place."""
    apply_masks((weight, mask) for _, weight, mask in iter_masked_weights(module))


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


def erk_densities(shapes, density):
    """Per-layer densities of the Erdős–Rényi-Kernel distribution at a global density.

    Each layer's density is ``eps * sum(shape) / prod(shape)`` with one ``eps`` for all, chosen
    so that the layers keep ``density`` of their weights together; a layer whose density would
    exceed 1 is made dense and ``eps`` recomputed for the others.

    Args:
        shapes (dict[str, torch.Size]): Weight shape per layer name.
        density (float): Fraction of all the weights to keep, in (0, 1].

    Returns:
        dict[str, float]: Density per layer name.
    """
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / numel[name] for name, shape in shapes.items()}
    dense = set()
    while True:
        sparse_numel = sum(numel[name] for name in shapes if name not in dense)
        kept = density * sum(numel.values()) - sum(numel[name] for name in dense)
        eps = kept / sum(raw[name] * numel[name] for name in shapes if name not in dense)
        too_dense = {name for name in shapes if name not in dense and eps * raw[name] > 1}
        if not too_dense or sparse_numel == 0:
            break
        dense |= too_dense
    return {name: 1.0 if name in dense else eps * raw[name] for name in shapes}


def random_mask(shape, density, generator):
    """A boolean mask with exactly ``round(density * numel)`` True entries drawn at random.

    Args:
        shape (torch.Size): The mask's shape.
        density (float): Fraction of True entries.
        generator (torch.Generator): A CPU generator to draw from.
    """
    numel = math.prod(shape)
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[torch.randperm(numel, generator=generator)[:round(density * numel)]] = True
    return mask.view(shape)


def snip_masks(scores, density):
    """Masks keeping the globally highest scores (SNIP: ``|weight * gradient|``), exact count.

    One threshold over all the layers keeps exactly ``round(density * total)`` positions; among
    equal scores the earlier layer and the lower index are kept.

    Args:
        scores (dict[str, torch.Tensor]): Score per layer name, shaped as its weight.
        density (float): Fraction of all the positions to keep.

    Returns:
        dict[str, torch.Tensor]: Boolean mask per layer name, on its score's device.
    """
    flat = torch.cat([score.detach().reshape(-1).float().cpu() for score in scores.values()])
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[torch.argsort(flat, descending=True, stable=True)[:round(density * flat.numel())]] = True
    masks, start = {}, 0
    for name, score in scores.items():
        masks[name] = keep[start:start + score.numel()].view(score.shape).to(score.device)
        start += score.numel()
    return masks


@torch.no_grad()
def prune_and_regrow(weight, mask, rate, generator=None, growth_scores=None):
    """Drop the smallest active weights and activate as many inactive positions.

    ``ceil(rate * active)`` active positions with the smallest magnitudes are pruned (ties go
    to the lower index) and the same number of positions inactive after pruning is regrown,
    so the number of active weights is kept exactly. The regrown positions are drawn at random
    or, given ``growth_scores`` (RigL: the gradient magnitude), are those with the highest
    scores (ties go to the lower index).

    Args:
        weight (torch.Tensor): The layer's weight, zero where ``mask`` is False.
        mask (torch.Tensor): Its boolean mask, updated in place.
        rate (float): Fraction of the active weights to move.
        generator (torch.Generator, optional): A CPU generator for random regrowth.
            Defaults to None.
        growth_scores (torch.Tensor, optional): Scores shaped as ``weight``; None regrows at
            random. Defaults to None.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: Flat indices of the pruned and the regrown positions.
    """
    flat = mask.reshape(-1).clone()
    active = flat.nonzero().squeeze(1)
    count = math.ceil(rate * active.numel())
    magnitude = weight.detach().reshape(-1)[active].abs().float().cpu()
    pruned = active[torch.argsort(magnitude, stable=True)[:count].to(active.device)]
    flat[pruned] = False
    inactive = (~flat).nonzero().squeeze(1)
    if growth_scores is None:
        draw = torch.randperm(inactive.numel(), generator=generator)[:count]
    else:
        score = growth_scores.detach().reshape(-1)[inactive].float().cpu()
        draw = torch.argsort(score, descending=True, stable=True)[:count]
    regrown = inactive[draw.to(inactive.device)]
    flat[regrown] = True
    mask.copy_(flat.view(mask.shape))
    return pruned, regrown
