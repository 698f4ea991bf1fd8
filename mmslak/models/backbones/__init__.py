from . import slak_checkpoint  # noqa: F401  (registers SLaK's format with mmslak.checkpoint)
from .slak import SLaK

__all__ = ['SLaK']
