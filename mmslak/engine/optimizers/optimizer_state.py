"""Optimizer state of single entries of a parameter: what moving a sparse weight resets."""
import torch


def reset_optimizer_state(optimizer, param, indices):
    """Zero the optimizer state of ``param`` at the flat ``indices`` (momenta, Adam moments).

    Args:
        optimizer (torch.optim.Optimizer): The optimizer that updates ``param``.
        param (torch.nn.Parameter): The parameter whose state is reset.
        indices (torch.Tensor): Flat indices into ``param``.
    """
    positions = torch.zeros(param.numel(), dtype=torch.bool, device=param.device)
    positions[indices] = True
    positions = positions.view(param.shape)
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value.masked_fill_(positions, 0)
