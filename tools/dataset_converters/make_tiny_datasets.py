"""Write tiny, seeded ADE20K / COCO / PASCAL VOC look-alikes for smoke tests and CPU demos.

Example:
    python tools/dataset_converters/make_tiny_datasets.py data/tiny --which coco voc --seed 1
"""
import argparse

from mmslak.datasets import DATASET_NAMES, make_tiny_datasets

LAYOUT = """written under OUT_ROOT:
  ade20k/ADEChallengeData2016/{images,annotations}/{training,validation}/
      ADE_{train,val}_00000001.{jpg,png}; PNG labels 0 = ignore, 1..5 = wall, building, sky,
      floor, tree (ADE20K classes 0..4)
  coco/{train2017,val2017}/*.jpg, coco/annotations/instances_{train2017,val2017}.json
      categories 1..3 = circle, square, triangle; polygon and RLE masks
  voc/VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets/Main/{trainval,test}.txt}
  voc/VOCdevkit/VOC2012/{Annotations,JPEGImages,ImageSets/Main/trainval.txt}
      classes bottle, chair, tvmonitor (drawn as circle, square, triangle)
The same arguments always give byte-identical files."""


def build_parser():
    parser = argparse.ArgumentParser(
        description='Generate tiny, learnable datasets in the ADE20K, COCO and PASCAL VOC '
        'on-disk formats.',
        epilog=LAYOUT,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_root', help='directory to write the datasets into')
    parser.add_argument('--which',
                        nargs='+',
                        choices=DATASET_NAMES,
                        default=list(DATASET_NAMES),
                        help='datasets to write (default: all)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--num-train',
                        type=int,
                        default=48,
                        help='training images per dataset; for VOC per trainval set (default: 48)')
    parser.add_argument(
        '--num-val',
        type=int,
        default=16,
        help='validation images per dataset; for VOC the VOC2007 test set (default: 16)')
    parser.add_argument('--size',
                        type=int,
                        nargs=2,
                        default=[128, 128],
                        metavar=('H', 'W'),
                        help='image height and width, each at least 32 (default: 128 128)')
    return parser


def main():
    parser = build_parser()
    args = parser.parse_args()
    try:
        records = make_tiny_datasets(args.out_root, args.which, args.num_train, args.num_val,
                                     tuple(args.size), args.seed)
    except ValueError as error:
        parser.error(str(error))
    for record in records:
        print(f'{record.dataset:<7} {record.split:<17} {record.num_images:>4} images '
              f'{record.num_instances:>5} objects  {record.ann_path}')


if __name__ == '__main__':
    main()
