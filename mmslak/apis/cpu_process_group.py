"""Process groups for ``--launcher`` runs on machines without CUDA (gloo)."""
import os
import subprocess
from datetime import timedelta

import torch.distributed as dist

# launcher -> how its environment names the rank, the world size and the local rank
_LAUNCHER_VARIABLES = {
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
    'mpi': ('OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'),
}


def _slurm_master_address():
    """The first host of the job, as mmengine's slurm launcher takes it."""
    nodes = os.environ['SLURM_NODELIST']
    return subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')


def _export_launcher_environment(launcher):
    """Set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the master from a launcher's variables.

    torchrun (``pytorch``) sets them itself; slurm and MPI name them their own way.
    """
    if launcher == 'pytorch':
        return
    rank, world_size, local_rank = _LAUNCHER_VARIABLES[launcher]
    missing = [name for name in (rank, world_size, local_rank) if name not in os.environ]
    if missing:
        raise KeyError(f'--launcher {launcher} needs the environment variables {missing}; '
                       f'start the tool through the {launcher} launcher')
    os.environ['RANK'] = os.environ[rank]
    os.environ['WORLD_SIZE'] = os.environ[world_size]
    os.environ['LOCAL_RANK'] = os.environ[local_rank]
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        if launcher == 'mpi':
            raise KeyError('--launcher mpi needs MASTER_ADDR, the address of rank 0')
        os.environ['MASTER_ADDR'] = _slurm_master_address()


def init_cpu_process_group(launcher, timeout=None):
    """Join the job's processes in a gloo process group, as mmengine does with nccl on GPUs.

    mmengine's ``init_dist`` selects the local CUDA device first, which fails on a machine
    without CUDA; this reads the same launcher variables (torchrun's, slurm's or MPI's, with
    ``MASTER_ADDR`` / ``MASTER_PORT`` for several machines) and starts gloo instead.

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        timeout (int | timedelta, optional): Seconds (or a timedelta) a collective may wait
            (``env_cfg.dist_cfg.timeout`` of the config). Defaults to PyTorch's default.
    """
    if launcher not in ('pytorch', *_LAUNCHER_VARIABLES):
        raise ValueError(f'Unknown launcher {launcher!r}; use pytorch, slurm or mpi')
    _export_launcher_environment(launcher)
    kwargs = {}
    if timeout is not None:
        kwargs['timeout'] = timeout if isinstance(timeout, timedelta) else \
            timedelta(seconds=timeout)
    dist.init_process_group(backend='gloo', init_method='env://', **kwargs)
