"""``torch.onnx`` export of a module that takes one image batch."""
import warnings

import torch

from mmslak.utils.torch_compat import torchscript_onnx_export

# 17: the first opset with LayerNormalization, which SLaK runs once per block.
OPSET = 17


def output_names(outputs):
    """``output`` for one tensor, ``output0``, ``output1``, ... for a tuple of them."""
    if torch.is_tensor(outputs):
        return ['output']
    return [f'output{i}' for i in range(len(outputs))]


def export_onnx(module, inputs, filename, dynamic=False, opset=OPSET):
    """Trace ``module`` on ``inputs`` and write the ONNX graph to ``filename``.

    The TorchScript exporter (``dynamo=False``) is used: torch 2.13's default ``torch.export``
    path needs onnxscript and exports the detectors' data-dependent shapes less reliably, and
    the traced graph is the one mmdeploy and ONNX Runtime users know. Run it inside
    :func:`~.traceable.traceable`.

    Args:
        module (nn.Module): Takes ``inputs`` and returns a tensor or a tuple of tensors.
        inputs (Tensor): An ``(N, 3, H, W)`` example batch.
        filename (str): Where to write the ``.onnx`` file.
        dynamic (bool): Make batch size, height and width dynamic axes of the input and of every
            output. Defaults to False (the shapes of ``inputs``).
        opset (int): ONNX opset. Defaults to 17.

    Returns:
        list[str]: The output names in the graph.
    """
    names = output_names(module(inputs))
    dynamic_axes = None
    if dynamic:
        axes = {0: 'batch', 2: 'height', 3: 'width'}
        dynamic_axes = {'input': axes}
        dynamic_axes.update({name: {0: 'batch', 2: f'{name}_height', 3: f'{name}_width'}
                             for name in names})
    with warnings.catch_warnings():
        # The shape checks of SLaK and the heads become trace-time constants: expected.
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export.*')
        torchscript_onnx_export(module, (inputs, ), filename, input_names=['input'],
                                output_names=names, dynamic_axes=dynamic_axes,
                                opset_version=opset, do_constant_folding=True)
    return names
