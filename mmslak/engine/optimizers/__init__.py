from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .layer_decay_optim_wrapper_constructor import LearningRateDecayOptimizerConstructor

__all__ = ['CPUAmpOptimWrapper', 'LearningRateDecayOptimizerConstructor']
