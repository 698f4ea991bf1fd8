"""Running a model through plain torch ops, so that an exporter can trace it."""
from contextlib import contextmanager

import torch
from mmengine.model import revert_sync_batchnorm

from mmslak.ops import use_ops
from .exact_pooling import exportable_adaptive_pools


@contextmanager
def traceable(model):
    """The ``torch`` ops and the model's adaptive pools exportable for the duration, without
    gradients.

    mmslak's CPU backend (oneDNN calls with fused epilogues, the compiled AVX-512 or AVX2
    depthwise kernel behind ctypes, weights packed once and cached) computes the same network
    but is opaque to tracing: the exporter would record a ctypes call it cannot translate, or an
    op with no ONNX symbolic. Under :func:`mmslak.ops.use_ops` ``('torch')`` each block runs
    ``F.conv2d``, ``F.batch_norm``, ``F.layer_norm``, ``F.linear`` and ``F.gelu``, in the
    input's layout. Adaptive average pools (UperNet's pyramid pooling) run as matrix products
    that export at any input size (:mod:`.exact_pooling`).

    Args:
        model (nn.Module): The model; every ``nn.AdaptiveAvgPool2d`` is replaced until the exit.

    Yields:
        nn.Module: ``model`` itself.
    """
    with use_ops('torch'), torch.no_grad(), exportable_adaptive_pools(model):
        yield model


def prepare_for_export(model):
    """Put a loaded model in its exportable inference form, in place.

    Eval mode; SyncBN layers (the recipes' norm) reverted to BN, which is what they compute in
    eval mode, without a process group; the SLaK backbone switched to its deploy form (BNs
    folded, each small kernel merged into a large one: two depthwise convolutions per block,
    one for dense kernels).

    Args:
        model (nn.Module): A segmentor or detector whose ``backbone`` is ``mmslak.SLaK``.

    Returns:
        nn.Module: The prepared model (a new object where SyncBN layers were reverted).
    """
    model = revert_sync_batchnorm(model).eval()
    model.backbone.switch_to_deploy()
    return model
