"""Pipeline errors that name the files of the sample they happened on.

mmcv's ``LoadImageFromFile`` and the ``LoadAnnotations`` of mmseg and mmdet read a file through
``mmengine.fileio`` and decode its bytes with ``mmcv.imfrombytes``: a corrupt file fails with,
e.g., ``cannot identify image file <_io.BytesIO object at 0x...>``, which names no file.
:func:`name_files_in_errors` wraps each transform of a built dataset's pipeline in
:class:`NameFilesOnError`, which re-raises such an error with the sample's paths. It works on the
built dataset, so configs stay as they are; it must run before a data loader starts its workers
(they copy the dataset), e.g. in ``Runner.build_dataloader``.
"""
import torch


def _sample_files(results):
    """The ``*_path`` entries of a pipeline's results dict (``img_path``, ``seg_map_path``)."""
    if not isinstance(results, dict):
        return {}
    return {key: value for key, value in results.items()
            if key.endswith('_path') and isinstance(value, str)}


class NameFilesOnError:
    """Run a pipeline transform; if it fails, re-raise naming the files of the sample.

    A missing file stays a ``FileNotFoundError``; any other error becomes a ``ValueError``
    chained to the original (``raise ... from``). Results without file paths re-raise the
    original error unchanged.

    Args:
        transform (Callable): A transform of a dataset's pipeline.
    """

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, results):
        files = _sample_files(results)
        try:
            return self.transform(results)
        except Exception as error:
            if not files:
                raise
            named = ', '.join(f'{key}={path}' for key, path in files.items())
            kind = FileNotFoundError if isinstance(error, FileNotFoundError) else ValueError
            raise kind(f'{type(self.transform).__name__} failed on the sample with {named}: '
                       f'{type(error).__name__}: {error}') from error

    def __repr__(self):
        return f'{type(self).__name__}({self.transform!r})'


def _wrap_transforms(transforms):
    """Wrap, in place, each transform of a list that is not wrapped yet."""
    for index, transform in enumerate(transforms):
        if not isinstance(transform, NameFilesOnError):
            transforms[index] = NameFilesOnError(transform)


def name_files_in_errors(dataset):
    """Make each pipeline transform of ``dataset`` name the sample's files when it fails.

    The datasets that ``dataset`` wraps (``dataset``, ``datasets``: ``RepeatDataset``,
    ``ConcatDataset``, ``ClassBalancedDataset``, ``MultiImageMixDataset``) are covered too.
    Calling it again changes nothing.

    Args:
        dataset (torch.utils.data.Dataset): A built dataset whose ``pipeline`` is a ``Compose``
            or a list of transforms; datasets without a pipeline are left as they are.

    Returns:
        Dataset: ``dataset`` itself.
    """
    pipeline = getattr(dataset, 'pipeline', None)
    transforms = pipeline if isinstance(pipeline, list) else getattr(pipeline, 'transforms', None)
    if isinstance(transforms, list):
        _wrap_transforms(transforms)
    inner = getattr(dataset, 'datasets', None) or [getattr(dataset, 'dataset', None)]
    for wrapped in inner:
        if isinstance(wrapped, torch.utils.data.Dataset):
            name_files_in_errors(wrapped)
    return dataset
