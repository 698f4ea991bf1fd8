# The tiny VOC Faster R-CNN demo with a Gauss classifier (Centroid Based Tailoring) in its RoI head:
# class confidence exp(-gamma * ||phi - z_c||^2) around learned centroids, one of them for
# background, trained one-vs-rest (mmslak.CentroidBCELoss). Same data, schedule and optimizer; as
# in the Gauss segmentation demo, centroids drawn close to the origin and gamma=0.1.
_base_ = './faster-rcnn_slak-nano_fpn_8e_tiny-voc0712.py'
model = dict(
    roi_head=dict(
        bbox_head=dict(
            type='mmslak.GaussShared2FCBBoxHead',
            gamma=0.1,
            centroid_std=0.3,
            loss_cls=dict(_delete_=True, type='mmslak.CentroidBCELoss', loss_weight=1.0))))
