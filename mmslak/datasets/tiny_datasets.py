"""Seeded generators of tiny, learnable datasets in the ADE20K, COCO and PASCAL VOC layouts.

The files are read by the upstream dataset classes unchanged (``mmseg.datasets.ADE20KDataset``,
``mmdet.datasets.CocoDataset``, ``mmdet.datasets.VOCDataset``). Each class has its own colour family
and shape on a textured, unsaturated background, so a small CNN learns the task in a few hundred
iterations. Every image has its own random generator, seeded by ``(seed, split, index)``: the same
arguments give byte-identical files, and a split does not change with the size of another.
"""
import json
import os
import os.path as osp
import xml.etree.ElementTree as ET
from typing import List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils

ADE20K_CLASSES = ('wall', 'building', 'sky', 'floor', 'tree')
ADE20K_PALETTE = [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3]]
COCO_CLASSES = ('circle', 'square', 'triangle')
VOC_CLASSES = ('bottle', 'chair', 'tvmonitor')
DATASET_NAMES = ('ade20k', 'coco', 'voc')

# Label values in the ADE20K PNGs: 0 is ignored, class i of ADE20K_CLASSES is i + 1.
_WALL, _BUILDING, _SKY, _FLOOR, _TREE = range(1, 6)
# Detection class i is drawn as _SHAPES[i], in the colour family around hue _SHAPE_HUES[i]
# (OpenCV's 0-180 scale: red, green, blue), its circumradius scaled by _SHAPE_SCALES[i] so
# that the three shapes cover similar areas.
_SHAPES = ('circle', 'square', 'triangle')
_SHAPE_HUES = (0, 60, 115)
_SHAPE_SCALES = (0.85, 1.0, 1.15)
# One random stream per split, so that splits are independent of each other.
_STREAMS = {
    'ade20k/training': 0,
    'ade20k/validation': 1,
    'coco/train2017': 2,
    'coco/val2017': 3,
    'VOC2007/trainval': 4,
    'VOC2007/test': 5,
    'VOC2012/trainval': 6,
}
_MIN_SIZE = 32
_JPEG_QUALITY = 95


class SplitRecord(NamedTuple):
    """What was written for one split of one dataset.

    Args:
        dataset (str): ``'ade20k'``, ``'coco'`` or ``'voc'``.
        split (str): Split name in the dataset's own terms, e.g. ``'training'``, ``'val2017'``,
            ``'VOC2007/test'``.
        image_dir (str): Directory of the split's images.
        ann_path (str): Annotation directory (ADE20K), JSON file (COCO) or image-set list (VOC).
        num_images (int): Number of images in the split.
        num_instances (int): Number of objects: building and tree regions for ADE20K, annotated
            instances for COCO and VOC.
    """

    dataset: str
    split: str
    image_dir: str
    ann_path: str
    num_images: int
    num_instances: int


class _Instance(NamedTuple):
    """A drawn detection object: its class, its visible pixels and, when they are exactly the
    rasterised polygon, the polygon as a flat ``[x1, y1, x2, y2, ...]`` list."""

    label: int
    mask: np.ndarray
    polygon: Optional[List[float]]


def make_tiny_datasets(out_root: str,
                       which: Sequence[str] = DATASET_NAMES,
                       num_train: int = 48,
                       num_val: int = 16,
                       size: Tuple[int, int] = (128, 128),
                       seed: int = 0) -> List[SplitRecord]:
    """Write the chosen tiny datasets under ``out_root``.

    Args:
        out_root (str): Root directory; the datasets go to ``ade20k/``, ``coco/`` and ``voc/``.
        which (Sequence[str]): Datasets to write, from ``DATASET_NAMES``. Defaults to all three.
        num_train (int): Training images per dataset (for VOC, per trainval set of VOC2007 and
            VOC2012). Defaults to 48.
        num_val (int): Validation images per dataset (for VOC, the VOC2007 test set).
            Defaults to 16.
        size (tuple[int, int]): Image height and width, each at least 32. Defaults to
            ``(128, 128)``.
        seed (int): Non-negative seed of all the random choices. Defaults to 0.

    Returns:
        list[SplitRecord]: One record per written split.
    """
    unknown = sorted(set(which) - set(DATASET_NAMES))
    if unknown:
        raise ValueError(f'unknown tiny datasets {unknown}; choose from {DATASET_NAMES}')
    makers = dict(ade20k=make_ade20k, coco=make_coco, voc=make_voc)
    records = []
    for name in DATASET_NAMES:
        if name in which:
            records += makers[name](out_root, num_train, num_val, size, seed)
    return records


def make_ade20k(out_root: str,
                num_train: int = 48,
                num_val: int = 16,
                size: Tuple[int, int] = (128, 128),
                seed: int = 0) -> List[SplitRecord]:
    """Write a tiny ADE20K: ``ade20k/ADEChallengeData2016/{images,annotations}/{training,
    validation}``.

    Images are JPEGs; labels are single-channel PNGs with 0 for ignored pixels and ``i + 1`` for
    class ``i`` of ``ADE20K_CLASSES`` (the first five ADE20K classes, in ADE20K's order). Scenes
    are a textured wall with, usually, a sky band at the top and a floor band at the bottom,
    buildings standing on the floor and round trees; about half of the buildings and trees have a
    two-pixel ignore border. Files of a previous, larger run in the same directories are removed,
    since ADE20K splits are read by listing them.

    Args:
        out_root (str): Root directory of the tiny datasets.
        num_train (int): Number of training images. Defaults to 48.
        num_val (int): Number of validation images. Defaults to 16.
        size (tuple[int, int]): Image height and width. Defaults to ``(128, 128)``.
        seed (int): Seed of the random choices. Defaults to 0.

    Returns:
        list[SplitRecord]: The training and validation records.
    """
    _check_args(num_train, num_val, size, seed)
    root = osp.join(out_root, 'ade20k', 'ADEChallengeData2016')
    return [
        _write_ade20k_split(root, 'training', 'ADE_train', num_train, size, seed),
        _write_ade20k_split(root, 'validation', 'ADE_val', num_val, size, seed),
    ]


def make_coco(out_root: str,
              num_train: int = 48,
              num_val: int = 16,
              size: Tuple[int, int] = (128, 128),
              seed: int = 0) -> List[SplitRecord]:
    """Write a tiny COCO: ``coco/{train2017,val2017}/*.jpg`` and
    ``coco/annotations/instances_{train2017,val2017}.json``.

    Categories 1, 2, 3 are ``COCO_CLASSES``: red circles, green squares and blue triangles.
    Image ids run on from the training into the validation split, as file names
    ``{id:012d}.jpg``. Squares and triangles are stored as polygons; circles, and any object
    partly hidden by a later one, as RLE with ``counts`` as a string. ``area`` and ``bbox`` are
    those of the annotated pixels.

    Args:
        out_root (str): Root directory of the tiny datasets.
        num_train (int): Number of training images. Defaults to 48.
        num_val (int): Number of validation images. Defaults to 16.
        size (tuple[int, int]): Image height and width. Defaults to ``(128, 128)``.
        seed (int): Seed of the random choices. Defaults to 0.

    Returns:
        list[SplitRecord]: The training and validation records.
    """
    _check_args(num_train, num_val, size, seed)
    root = osp.join(out_root, 'coco')
    return [
        _write_coco_split(root, 'train2017', range(1, num_train + 1), size, seed),
        _write_coco_split(root, 'val2017', range(num_train + 1, num_train + num_val + 1), size,
                          seed),
    ]


def make_voc(out_root: str,
             num_train: int = 48,
             num_val: int = 16,
             size: Tuple[int, int] = (128, 128),
             seed: int = 0) -> List[SplitRecord]:
    """Write a tiny PASCAL VOC: ``voc/VOCdevkit/VOC2007`` with ``trainval`` and ``test`` image
    sets, and ``voc/VOCdevkit/VOC2012`` with ``trainval``.

    The scenes are those of :func:`make_coco` (drawn from other random streams) with the classes
    renamed to ``VOC_CLASSES``. Each XML file has ``size`` and, per object, ``name``,
    ``difficult=0`` and a ``bndbox`` in VOC's 1-based, inclusive pixel coordinates. VOC2007 ids
    are ``000001``, ... (trainval first, then test), VOC2012 ids ``2012_000001``, ...

    Args:
        out_root (str): Root directory of the tiny datasets.
        num_train (int): Number of images in each trainval set. Defaults to 48.
        num_val (int): Number of VOC2007 test images. Defaults to 16.
        size (tuple[int, int]): Image height and width. Defaults to ``(128, 128)``.
        seed (int): Seed of the random choices. Defaults to 0.

    Returns:
        list[SplitRecord]: The VOC2007 trainval, VOC2007 test and VOC2012 trainval records.
    """
    _check_args(num_train, num_val, size, seed)
    devkit = osp.join(out_root, 'voc', 'VOCdevkit')
    voc2007_ids = [f'{number:06d}' for number in range(1, num_train + num_val + 1)]
    voc2012_ids = [f'2012_{number:06d}' for number in range(1, num_train + 1)]
    return [
        _write_voc_split(devkit, 'VOC2007', 'trainval', voc2007_ids[:num_train], size, seed),
        _write_voc_split(devkit, 'VOC2007', 'test', voc2007_ids[num_train:], size, seed),
        _write_voc_split(devkit, 'VOC2012', 'trainval', voc2012_ids, size, seed),
    ]


def _check_args(num_train, num_val, size, seed):
    """Raise ``ValueError`` unless the split sizes, image size and seed can be generated."""
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive int, got {value!r}')
    if len(size) != 2 or any(not isinstance(side, int) or side < _MIN_SIZE for side in size):
        raise ValueError(f'size must be (height, width), ints of at least {_MIN_SIZE}, '
                         f'got {size!r}')
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')


def _rng(seed, stream, index):
    """The random generator of image ``index`` of split ``stream``."""
    return np.random.default_rng([seed, _STREAMS[stream], index])


# --- Textures and colours ------------------------------------------------------------------------


def _smooth_noise(rng, size, cell):
    """Noise in [0, 1] that varies smoothly over about ``cell`` pixels."""
    height, width = size
    coarse = rng.random((height // cell + 2, width // cell + 2)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _stripes(rng, size, period, angle):
    """Sinusoidal stripes in [0, 1] of the given period (pixels) and angle (radians)."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]].astype(np.float32)
    across = xs * np.cos(angle) + ys * np.sin(angle)
    return 0.5 + 0.5 * np.sin(2 * np.pi * across / period + rng.uniform(0, 2 * np.pi))


def _hsv_to_bgr(hue, saturation, value):
    """A BGR image from HSV on OpenCV's scale (hue 0-180); scalars broadcast to the arrays."""
    hue, saturation, value = np.broadcast_arrays(hue, saturation, value)
    hsv = np.stack([np.mod(hue, 180), saturation.clip(0, 255), value.clip(0, 255)], axis=-1)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)


def _write_image(path, image):
    """Write a JPEG (quality 95) or PNG, creating its directory."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if path.endswith('.jpg') else []
    if not cv2.imwrite(path, image, params):
        raise OSError(f'OpenCV could not write {path}')


def _write_text(path, text):
    """Write a text file, creating its directory."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as file:
        file.write(text)


# --- ADE20K --------------------------------------------------------------------------------------


class _Region(NamedTuple):
    """One layer of an ADE20K scene: its label value, pixels, colours and ignore border."""

    label: int
    mask: np.ndarray
    fill: np.ndarray
    ignore_border: bool


def _wall_fill(rng, size):
    """Beige, low-saturation wallpaper with vertical stripes."""
    stripes = _stripes(rng, size, rng.uniform(6, 14), rng.uniform(-0.2, 0.2))
    value = rng.uniform(150, 200) * (0.85 + 0.1 * stripes + 0.1 * _smooth_noise(rng, size, 16))
    return _hsv_to_bgr(rng.uniform(15, 30), rng.uniform(15, 50), value)


def _sky_fill(rng, size):
    """Light blue sky, more saturated towards the top, with cloudy noise."""
    height = size[0]
    towards_top = np.linspace(1, 0.3, height, dtype=np.float32)[:, None]
    clouds = _smooth_noise(rng, size, 12)
    saturation = rng.uniform(110, 170) * towards_top * (1 - 0.5 * clouds)
    return _hsv_to_bgr(rng.uniform(98, 108), saturation, rng.uniform(215, 250))


def _floor_fill(rng, size):
    """Dark brown floor boards: horizontal stripes."""
    boards = _stripes(rng, size, rng.uniform(5, 9), np.pi / 2)
    value = rng.uniform(70, 110) * (0.8 + 0.3 * boards)
    return _hsv_to_bgr(rng.uniform(8, 16), rng.uniform(130, 200), value)


def _building_fill(rng, size, origin):
    """Pink-red facade with a grid of dark windows starting at ``origin`` (x, y)."""
    ys, xs = np.mgrid[0:size[0], 0:size[1]]
    period = int(rng.integers(6, 10))
    in_column = (xs - origin[0]) % period >= period // 2
    in_row = (ys - origin[1]) % period >= period // 2
    windows = in_column & in_row
    value = rng.uniform(160, 210) * (1 - 0.55 * windows) * (0.9 + 0.1 * _smooth_noise(rng, size, 8))
    return _hsv_to_bgr(rng.uniform(172, 184), rng.uniform(70, 120), value)


def _tree_fill(rng, size):
    """Saturated green foliage with fine leafy noise."""
    leaves = _smooth_noise(rng, size, 3)
    return _hsv_to_bgr(rng.uniform(52, 70), rng.uniform(160, 230),
                       rng.uniform(90, 190) * (0.7 + 0.5 * leaves))


def _band(size, top, bottom):
    """Mask of the full-width rows ``top:bottom``."""
    mask = np.zeros(size, bool)
    mask[top:bottom] = True
    return mask


def _building(rng, size, ground):
    """A rectangular building standing on row ``ground``."""
    height, width = size
    building_w = max(int(width * rng.uniform(0.18, 0.35)), 1)
    building_h = max(int(height * rng.uniform(0.3, 0.55)), 1)
    left = int(rng.integers(0, width - building_w + 1))
    bottom = min(ground + int(rng.integers(0, 4)), height)
    top = max(bottom - building_h, 0)
    mask = np.zeros(size, bool)
    mask[top:bottom, left:left + building_w] = True
    return _Region(_BUILDING, mask, _building_fill(rng, size, (left, top)), rng.random() < 0.5)


def _tree(rng, size):
    """A round tree crown: two or three overlapping discs."""
    height, width = size
    radius = min(size) * rng.uniform(0.08, 0.15)
    centre = rng.uniform([radius, radius], [width - radius, height - radius])
    mask = np.zeros(size, np.uint8)
    for _ in range(int(rng.integers(2, 4))):
        x, y = centre + rng.uniform(-0.6, 0.6, 2) * radius
        cv2.circle(mask, (round(x), round(y)), round(radius * rng.uniform(0.7, 1.0)), 1, -1)
    return _Region(_TREE, mask.astype(bool), _tree_fill(rng, size), rng.random() < 0.5)


def _ade20k_regions(rng, size):
    """The layers of one scene, back to front: wall, sky, floor, buildings, trees."""
    height = size[0]
    sky_bottom = int(height * rng.uniform(0.15, 0.35)) if rng.random() < 0.85 else 0
    ground = height - int(height * rng.uniform(0.15, 0.3)) if rng.random() < 0.85 else height
    regions = [
        _Region(_WALL, _band(size, 0, height), _wall_fill(rng, size), False),
        _Region(_SKY, _band(size, 0, sky_bottom), _sky_fill(rng, size), False),
        _Region(_FLOOR, _band(size, ground, height), _floor_fill(rng, size), False),
    ]
    regions += [_building(rng, size, ground) for _ in range(int(rng.integers(1, 3)))]
    regions += [_tree(rng, size) for _ in range(int(rng.integers(1, 4)))]
    return regions


def _paint_regions(regions, size):
    """Paint the layers in order; an ignore border covers two pixels across a region's edge."""
    image = np.zeros((*size, 3), np.uint8)
    label = np.zeros(size, np.uint8)
    for region in regions:
        image[region.mask] = region.fill[region.mask]
        label[region.mask] = region.label
        if region.ignore_border:
            edge = cv2.morphologyEx(region.mask.astype(np.uint8), cv2.MORPH_GRADIENT,
                                    np.ones((3, 3), np.uint8))
            label[edge > 0] = 0
    return image, label


def _remove_stale_files(directory, prefix, keep):
    """Remove files named ``prefix*`` that are not in ``keep``, left by a larger earlier run."""
    if osp.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.startswith(prefix) and name not in keep:
                os.remove(osp.join(directory, name))


def _write_ade20k_split(root, split, prefix, num_images, size, seed):
    """Draw and write the images and label maps of one ADE20K split."""
    image_dir = osp.join(root, 'images', split)
    ann_dir = osp.join(root, 'annotations', split)
    names = [f'{prefix}_{number:08d}' for number in range(1, num_images + 1)]
    num_objects = 0
    for index, name in enumerate(names):
        regions = _ade20k_regions(_rng(seed, f'ade20k/{split}', index), size)
        image, label = _paint_regions(regions, size)
        _write_image(osp.join(image_dir, f'{name}.jpg'), image)
        _write_image(osp.join(ann_dir, f'{name}.png'), label)
        num_objects += sum(region.label in (_BUILDING, _TREE) for region in regions)
    _remove_stale_files(image_dir, prefix, {f'{name}.jpg' for name in names})
    _remove_stale_files(ann_dir, prefix, {f'{name}.png' for name in names})
    return SplitRecord('ade20k', split, image_dir, ann_dir, num_images, num_objects)


# --- Detection scenes (COCO and VOC) -------------------------------------------------------------


def _detection_background(rng, size):
    """Unsaturated background of smooth noise and stripes in a random tint."""
    stripes = _stripes(rng, size, rng.uniform(6, 20), rng.uniform(0, np.pi))
    mix = rng.uniform(0.2, 0.6)
    brightness = (1 - mix) * _smooth_noise(rng, size, int(rng.integers(8, 24))) + mix * stripes
    return _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 40), 70 + 120 * brightness)


def _object_fill(rng, size, label):
    """Saturated, slightly mottled colour from the family of detection class ``label``."""
    mottle = _smooth_noise(rng, size, int(rng.integers(4, 9)))
    value = rng.uniform(150, 240) * (0.8 + 0.2 * mottle)
    return _hsv_to_bgr(_SHAPE_HUES[label] + rng.uniform(-8, 8), rng.uniform(150, 255), value)


def _rasterise_polygon(polygon, size):
    """The pixels pycocotools assigns to a flat polygon, as loaders and COCO evaluation do."""
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], size[0], size[1]))
    return mask_utils.decode(rle).astype(bool)


def _regular_polygon(rng, centre, radius, num_sides):
    """A square (4) or triangle (3) around ``centre``, slightly rotated from upright."""
    tilt = rng.uniform(-np.pi / 12, np.pi / 12)
    start = np.pi / 4 if num_sides == 4 else -np.pi / 2
    angles = start + tilt + 2 * np.pi * np.arange(num_sides) / num_sides
    points = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)])
    return [round(float(coordinate), 2) for coordinate in points.T.ravel()]


def _draw_shape(rng, size, label):
    """Mask and, for squares and triangles, polygon of a class-``label`` shape inside the image."""
    height, width = size
    radius = min(size) * rng.uniform(0.1, 0.2) * _SHAPE_SCALES[label]
    centre = rng.uniform([radius + 1, radius + 1], [width - radius - 2, height - radius - 2])
    if _SHAPES[label] == 'circle':
        mask = np.zeros(size, np.uint8)
        cv2.circle(mask, (round(centre[0]), round(centre[1])), round(radius), 1, -1)
        return mask.astype(bool), None
    polygon = _regular_polygon(rng, centre, radius, 4 if _SHAPES[label] == 'square' else 3)
    return _rasterise_polygon(polygon, size), polygon


def _overlap_is_small(mask, others, max_fraction=0.2):
    """Whether ``mask`` hides at most ``max_fraction`` of each other mask and of itself."""
    union = np.zeros_like(mask)
    for other in others:
        if (mask & other).sum() > max_fraction * other.sum():
            return False
        union |= other
    return (mask & union).sum() <= max_fraction * mask.sum()


def _hide_behind(instance, mask):
    """The instance with the pixels of a newer ``mask`` removed; a hidden polygon becomes RLE."""
    visible = instance.mask & ~mask
    if visible.sum() == instance.mask.sum():
        return instance
    return _Instance(instance.label, visible, None)


def _draw_detection_scene(rng, size, max_tries=20):
    """Draw two to four shapes of random classes on a background; later ones may hide a little
    of earlier ones, and a shape with too much overlap is redrawn elsewhere or dropped."""
    image = _detection_background(rng, size)
    instances = []
    for _ in range(int(rng.integers(2, 5))):
        for _ in range(max_tries):
            label = int(rng.integers(len(_SHAPES)))
            mask, polygon = _draw_shape(rng, size, label)
            if _overlap_is_small(mask, [instance.mask for instance in instances]):
                image[mask] = _object_fill(rng, size, label)[mask]
                instances = [_hide_behind(instance, mask) for instance in instances]
                instances.append(_Instance(label, mask, polygon))
                break
    return image, instances


# --- COCO ----------------------------------------------------------------------------------------


def _coco_annotation(instance, ann_id, image_id):
    """COCO annotation dict of an instance, with a polygon or a string-RLE segmentation."""
    rle = mask_utils.encode(np.asfortranarray(instance.mask.astype(np.uint8)))
    if instance.polygon is None:
        segmentation = dict(size=rle['size'], counts=rle['counts'].decode('ascii'))
    else:
        segmentation = [instance.polygon]
    return dict(id=ann_id,
                image_id=image_id,
                category_id=instance.label + 1,
                segmentation=segmentation,
                area=float(mask_utils.area(rle)),
                bbox=[float(value) for value in mask_utils.toBbox(rle)],
                iscrowd=0)


def _write_coco_split(root, split, image_ids, size, seed):
    """Draw and write the images and instance JSON of one COCO split."""
    images, annotations = [], []
    for index, image_id in enumerate(image_ids):
        image, instances = _draw_detection_scene(_rng(seed, f'coco/{split}', index), size)
        file_name = f'{image_id:012d}.jpg'
        _write_image(osp.join(root, split, file_name), image)
        images.append(dict(id=image_id, width=size[1], height=size[0], file_name=file_name))
        for instance in instances:
            annotations.append(_coco_annotation(instance, len(annotations) + 1, image_id))
    categories = [
        dict(id=index + 1, name=name, supercategory='shape')
        for index, name in enumerate(COCO_CLASSES)
    ]
    ann_path = osp.join(root, 'annotations', f'instances_{split}.json')
    _write_text(ann_path,
                json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return SplitRecord('coco', split, osp.join(root, split), ann_path, len(images),
                       len(annotations))


# --- PASCAL VOC ----------------------------------------------------------------------------------


def _add_text(parent, tag, text):
    """Append ``<tag>text</tag>`` to ``parent`` and return it."""
    element = ET.SubElement(parent, tag)
    element.text = str(text)
    return element


def _add_voc_object(annotation, instance):
    """Append an ``<object>`` with the 1-based, inclusive bounding box of the visible pixels."""
    ys, xs = np.nonzero(instance.mask)
    obj = ET.SubElement(annotation, 'object')
    _add_text(obj, 'name', VOC_CLASSES[instance.label])
    _add_text(obj, 'pose', 'Unspecified')
    _add_text(obj, 'truncated', 0)
    _add_text(obj, 'difficult', 0)
    box = ET.SubElement(obj, 'bndbox')
    for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                          (xs.min(), ys.min(), xs.max(), ys.max())):
        _add_text(box, tag, int(value) + 1)


def _voc_annotation(year, image_id, size, instances):
    """The VOC XML tree of one image."""
    annotation = ET.Element('annotation')
    _add_text(annotation, 'folder', year)
    _add_text(annotation, 'filename', f'{image_id}.jpg')
    image_size = ET.SubElement(annotation, 'size')
    _add_text(image_size, 'width', size[1])
    _add_text(image_size, 'height', size[0])
    _add_text(image_size, 'depth', 3)
    _add_text(annotation, 'segmented', 0)
    for instance in instances:
        _add_voc_object(annotation, instance)
    ET.indent(annotation)
    return ET.ElementTree(annotation)


def _write_voc_split(devkit, year, split, image_ids, size, seed):
    """Draw and write the images, XML files and image-set list of one VOC split."""
    year_root = osp.join(devkit, year)
    num_objects = 0
    for index, image_id in enumerate(image_ids):
        image, instances = _draw_detection_scene(_rng(seed, f'{year}/{split}', index), size)
        _write_image(osp.join(year_root, 'JPEGImages', f'{image_id}.jpg'), image)
        xml_path = osp.join(year_root, 'Annotations', f'{image_id}.xml')
        os.makedirs(osp.dirname(xml_path), exist_ok=True)
        _voc_annotation(year, image_id, size, instances).write(xml_path, encoding='utf-8')
        num_objects += len(instances)
    list_path = osp.join(year_root, 'ImageSets', 'Main', f'{split}.txt')
    _write_text(list_path, ''.join(f'{image_id}\n' for image_id in image_ids))
    return SplitRecord('voc', f'{year}/{split}', osp.join(year_root, 'JPEGImages'), list_path,
                       len(image_ids), num_objects)
