"""The one checkpoint pipeline: read (safely) -> recognise -> translate keys -> check -> load.

:func:`load_weights` runs it for ``init_cfg`` (SLaK's ``init_weights``), the runner
(:class:`mmslak.engine.CheckedRunner`), the converters and the tools. Model families tell it
their key names, derived keys and likely causes by registering a :class:`CheckpointFormat`
(:func:`register_format`); the pipeline imports no model.
"""
from .fit import check_fit, model_mismatch
from .formats import CheckpointFormat, Scope, format_of, format_scopes, register_format
from .load import load_weights
from .mismatch import Mismatch, find_mismatch
from .read import read_checkpoint
from .recognise import BACKBONE_PREFIX, Layout, recognise
from .tensor_checks import check_dtypes, check_finite, non_finite_tensors
from .translate import STRIP_MODULE, translate_keys

__all__ = [
    'BACKBONE_PREFIX', 'CheckpointFormat', 'Layout', 'Mismatch', 'STRIP_MODULE', 'Scope',
    'check_dtypes', 'check_finite', 'check_fit', 'find_mismatch', 'format_of', 'format_scopes',
    'load_weights', 'model_mismatch', 'non_finite_tensors', 'read_checkpoint', 'recognise',
    'register_format', 'translate_keys'
]
