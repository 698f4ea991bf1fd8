# The softmax demo with Gauss classifiers (Centroid Based Tailoring) as the last layers of the
# UperNet head and its auxiliary FCN head: confidence exp(-||phi - z_c||^2) around learned class
# centroids, trained with one-vs-rest binary cross-entropy. Same data, schedule and optimizer.
# Three head settings differ from the defaults: no dropout before the classifier (a dropped
# coordinate moves a feature's squared distance to every centroid, where it only rescales a linear
# layer's logits), centroids drawn closer to the origin (max(0, N(0, 0.3^2)) per coordinate) and
# gamma=0.1 (the paper's exp(-||phi - z_c||^2) on features scaled by sqrt(0.1)). On the tiny set
# they took the Gauss head from 88.9 to 93.1 mIoU (seed 0; 93.5 with seed 1); softmax: 96.0, 96.4.
_base_ = './slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py'
model = dict(
    decode_head=dict(
        type='mmslak.GaussUPerHead',
        dropout_ratio=0.,
        gamma=0.1,
        centroid_std=0.3,
        loss_decode=dict(_delete_=True, type='mmslak.CentroidBCELoss', loss_weight=1.0)),
    auxiliary_head=dict(
        type='mmslak.GaussFCNHead',
        dropout_ratio=0.,
        gamma=0.1,
        centroid_std=0.3,
        loss_decode=dict(_delete_=True, type='mmslak.CentroidBCELoss', loss_weight=0.4)))
