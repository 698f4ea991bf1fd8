from .file_errors import NameFilesOnError, name_files_in_errors
from .tiny_datasets import (ADE20K_CLASSES, ADE20K_PALETTE, COCO_CLASSES, DATASET_NAMES,
                            VOC_CLASSES, SplitRecord, make_ade20k, make_coco, make_tiny_datasets,
                            make_voc)

__all__ = [
    'ADE20K_CLASSES', 'ADE20K_PALETTE', 'COCO_CLASSES', 'DATASET_NAMES', 'VOC_CLASSES',
    'NameFilesOnError', 'SplitRecord', 'make_ade20k', 'make_coco', 'make_tiny_datasets',
    'make_voc', 'name_files_in_errors'
]
