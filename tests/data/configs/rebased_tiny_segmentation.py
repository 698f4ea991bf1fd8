# A new task from a recipe, without touching mmslak: the SLaK demo UperNet re-based on a generic
# mmseg BaseSegDataset (here the tiny ADE20K files read as a custom 5-class dataset).
_base_ = '../../../configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py'
data_root = 'data/tiny/ade20k/ADEChallengeData2016'
metainfo = dict(
    classes=('background', 'house', 'heaven', 'ground', 'plant'),
    palette=[[0, 0, 0], [255, 0, 0], [0, 0, 255], [128, 64, 0], [0, 255, 0]])
custom_split = dict(
    _delete_=True,
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_dataloader = dict(
    dataset=dict(
        **custom_split,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        **custom_split,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
