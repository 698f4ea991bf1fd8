from .cpu_data_parallel import CPUDistributedDataParallel

__all__ = ['CPUDistributedDataParallel']
