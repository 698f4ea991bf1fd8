# The tiny COCO Cascade Mask R-CNN demo with a Gauss classifier (Centroid Based Tailoring) in each
# of its three RoI bbox heads: class confidence exp(-gamma * ||phi - z_c||^2) around learned
# centroids, one of them for background, trained one-vs-rest (mmslak.CentroidBCELoss). Same data,
# schedule and optimizer; centroids drawn close to the origin and gamma=0.1, as in the Gauss
# segmentation demo.
_base_ = './cascade-mask-rcnn_slak-nano_fpn_4conv1fc-giou_ms-crop-24e_tiny-coco.py'
width = 64
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    roi_head=dict(bbox_head=[
        dict(
            type='mmslak.GaussConvFCBBoxHead',
            gamma=0.1,
            centroid_std=0.3,
            num_shared_convs=4,
            num_shared_fcs=1,
            in_channels=width,
            conv_out_channels=width,
            fc_out_channels=256,
            roi_feat_size=7,
            num_classes=3,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
            reg_class_agnostic=False,
            reg_decoded_bbox=True,
            norm_cfg=norm_cfg,
            loss_cls=dict(type='mmslak.CentroidBCELoss', loss_weight=1.0),
            loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
        for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
    ]))
# The centroids learn 10x faster, as in the Gauss Faster R-CNN demo (see there why).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'fc_cls.centroids': dict(lr_mult=10.)}))
