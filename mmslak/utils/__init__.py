from .messages import short_list
from .safe_load import safe_load

__all__ = ['safe_load', 'short_list']
