"""Batch normalisation synchronised across the processes of a CPU (gloo) data-parallel run."""
import torch
import torch.distributed as dist
from torch.nn.modules.batchnorm import _BatchNorm


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, tensor, group):
        ctx.group = group
        total = tensor.clone()
        dist.all_reduce(total, group=group)
        return total

    @staticmethod
    def backward(ctx, grad):
        total = grad.clone()
        dist.all_reduce(total, group=ctx.group)
        return total, None


def _channel_shape(x):
    """The shape that broadcasts a per-channel vector over ``x`` (channels in dimension 1)."""
    return (1, -1) + (1, ) * (x.dim() - 2)


class CPUSyncBatchNorm(_BatchNorm):
    """``SyncBatchNorm`` for CPU tensors, whose statistics are those of the global batch.

    PyTorch's :class:`torch.nn.SyncBatchNorm` needs a GPU. In training mode, with a process group
    of more than one process, this layer gathers each process's count, mean and sum of squared
    deviations per channel through a differentiable all-reduce (any backend, gloo included) and
    combines them exactly (Chan et al.'s parallel variance), so that outputs, gradients and
    running statistics are those of one BatchNorm over the concatenated batch, and the running
    statistics stay identical on every process. Otherwise it is a plain BatchNorm. Its parameters
    and buffers are a BatchNorm's, so state dicts keep their keys.

    Args:
        num_features (int): Number of channels (dimension 1 of the input).
        eps (float): Added to the variance. Defaults to 1e-5.
        momentum (float, optional): Running-statistics momentum; None for a cumulative average.
            Defaults to 0.1.
        affine (bool): Learn a per-channel scale and shift. Defaults to True.
        track_running_stats (bool): Keep running statistics. Defaults to True.
        process_group (ProcessGroup, optional): The processes to synchronise; None for all.
    """

    def __init__(self,
                 num_features,
                 eps=1e-5,
                 momentum=0.1,
                 affine=True,
                 track_running_stats=True,
                 process_group=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f'expected an input of at least 2 dimensions, got {input.dim()}')

    def _world_size(self):
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        return dist.get_world_size(self.process_group)

    def forward(self, x):
        world_size = self._world_size()
        if not self.training or world_size == 1:
            return super().forward(x)
        self._check_input_dim(x)
        # statistics in float32 also under autocast, as PyTorch's batch norm computes them
        x32 = x.float()
        mean, var, count = self._global_statistics(x32, world_size)
        if self.track_running_stats:
            self._update_running_statistics(mean, var, count)
        shape = _channel_shape(x)
        out = (x32 - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(x.dtype)

    def _global_statistics(self, x, world_size):
        """Mean, biased variance and element count per channel over all processes' inputs."""
        dims = [0, *range(2, x.dim())]
        count = x.numel() // x.size(1)
        local_mean = x.sum(dims) / max(count, 1)
        local_m2 = (x - local_mean.view(_channel_shape(x))).square().sum(dims)
        stats = x.new_zeros(world_size, 3, x.size(1))
        rank = dist.get_rank(self.process_group)
        local = torch.stack([torch.full_like(local_mean, count), local_mean, local_m2])
        # each process writes its own slot: the sum over processes is a differentiable gather
        stats = stats.index_put((torch.tensor([rank]), ), local[None])
        counts, means, m2s = _SumOverProcesses.apply(stats, self.process_group).unbind(1)
        total = counts.sum(0)
        mean = (counts * means).sum(0) / total
        m2 = m2s.sum(0) + (counts * (means - mean).square()).sum(0)
        return mean, m2 / total, total[0]

    @torch.no_grad()
    def _update_running_statistics(self, mean, var, count):
        self.num_batches_tracked.add_(1)
        factor = 1. / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * count / (count - 1).clamp_min(1)
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)

    @classmethod
    def convert_sync_batchnorm(cls, module):
        """Replace every :class:`torch.nn.SyncBatchNorm` in ``module`` by this layer.

        The new layers share the old ones' parameters and buffers.

        Args:
            module (nn.Module): The model (converted in place where it has children).

        Returns:
            nn.Module: ``module``, or its replacement if it is a SyncBatchNorm itself.

        Raises:
            ValueError: If the model holds mmcv's ``MMSyncBN``, which runs on CUDA only.
        """
        if type(module).__name__ == 'SyncBatchNorm' and \
                not isinstance(module, torch.nn.SyncBatchNorm):
            raise ValueError(f'{type(module).__module__}.SyncBatchNorm (MMSyncBN) needs CUDA; '
                             "use norm_cfg=dict(type='SyncBN') for CPU data-parallel runs")
        if isinstance(module, torch.nn.SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, module.process_group)
            converted._parameters.update(module._parameters)
            converted._buffers.update(module._buffers)
            converted.train(module.training)
            return converted
        for name, child in module.named_children():
            module.add_module(name, cls.convert_sync_batchnorm(child))
        return module
