"""Pieces of the messages that name many keys or tensors."""


def short_list(items, limit=8):
    """The first ``limit`` items joined by commas, with the total count when there are more.

    Args:
        items (Iterable): The items, shown with ``str``.
        limit (int): The most items shown. Defaults to 8.

    Returns:
        str: E.g. ``'a, b, c ... (12 in all)'``.
    """
    items = list(items)
    shown = ', '.join(str(item) for item in items[:limit])
    return shown + (f' ... ({len(items)} in all)' if len(items) > limit else '')
