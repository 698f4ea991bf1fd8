from .slak import SLaK

__all__ = ['SLaK']
