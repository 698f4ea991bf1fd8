from .cpu_amp_optim_wrapper import CPUAmpOptimWrapper
from .layer_decay_optim_wrapper_constructor import LearningRateDecayOptimizerConstructor
from .optimizer_state import reset_optimizer_state

__all__ = ['CPUAmpOptimWrapper', 'LearningRateDecayOptimizerConstructor', 'reset_optimizer_state']
