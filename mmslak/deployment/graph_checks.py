"""What an exported ONNX graph holds: its depthwise convolutions, against the SLaK backbone's."""
import numpy as np

from mmslak.models.layers import LargeKernelConv


def depthwise_convs(graph_model):
    """The depthwise ``Conv`` nodes of an ONNX model: one input channel per group.

    Args:
        graph_model (onnx.ModelProto): The loaded model.

    Returns:
        list[dict]: Per node, in graph order: ``name``, ``kernel`` (height, width) and
        ``bias`` (whether it has one).
    """
    from onnx import numpy_helper
    initializers = {init.name: init for init in graph_model.graph.initializer}
    convs = []
    for node in graph_model.graph.node:
        if node.op_type != 'Conv' or node.input[1] not in initializers:
            continue
        group = next((attr.i for attr in node.attribute if attr.name == 'group'), 1)
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if group > 1 and weight.shape[1] == 1 and weight.shape[0] == group:
            convs.append(dict(name=node.name, kernel=tuple(int(k) for k in weight.shape[2:]),
                              bias=len(node.input) > 2 and bool(node.input[2])))
    return convs


def expected_depthwise_kernels(backbone):
    """The depthwise kernels of a SLaK backbone in deploy form, in forward order.

    Args:
        backbone (SLaK): The backbone, switched to its deploy form.

    Returns:
        list[tuple[int, int]]: Two per block (``k x s`` then ``s x k``) for decomposed kernels,
        one (``k x k``) for dense ones.
    """
    kernels = []
    for module in backbone.modules():
        if isinstance(module, LargeKernelConv):
            kernels += [tuple(getattr(module, name).weight.shape[2:])
                        for name in module.branch_names]
    return kernels


def check_depthwise_convs(graph_model, backbone):
    """Refuse a graph whose depthwise convolutions are not exactly the deploy form's.

    A training-form branch left behind (the ``s x s`` small kernel, a BatchNormalization after
    a bias-free depthwise conv) or a re-parameterisation that padded or mis-shaped a kernel
    shows here.

    Args:
        graph_model (onnx.ModelProto): The exported model.
        backbone (SLaK): Its backbone, in deploy form.

    Returns:
        dict: ``blocks``, ``depthwise_convs`` (count in the graph), ``per_block`` and
        ``kernels`` (the distinct kernel shapes, largest first, e.g. ``'5x51'``).

    Raises:
        ValueError: If the graph's depthwise kernels differ from the backbone's, or one lacks
            its bias.
    """
    found = depthwise_convs(graph_model)
    expected = expected_depthwise_kernels(backbone)
    kernels = [conv['kernel'] for conv in found]
    if kernels != expected:
        raise ValueError(f'The graph holds {len(kernels)} depthwise convolutions {kernels}, the '
                         f'deploy-form backbone {len(expected)} {expected}: a training-form '
                         'branch or a mis-shaped kernel was exported')
    biasless = [conv['name'] for conv in found if not conv['bias']]
    if biasless:
        raise ValueError(f'Depthwise convolutions without the folded BN bias: {biasless}')
    blocks = sum(1 for module in backbone.modules() if isinstance(module, LargeKernelConv))
    return dict(blocks=blocks, depthwise_convs=len(found),
                per_block=len(found) / max(blocks, 1),
                kernels=[f'{h}x{w}' for h, w in sorted(set(kernels),
                                                       key=lambda k: (-int(np.prod(k)), k))])
