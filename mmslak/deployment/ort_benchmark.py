"""An exported copy of a module, run by ONNX Runtime: a row beside PyTorch in a benchmark."""
from .onnx_export import export_onnx
from .onnx_runtime import OrtRunner
from .traceable import traceable


def onnx_runtime_twin(module, inputs, filename, threads=None, dynamic=False):
    """Export ``module`` (in eval and deploy form) to ``filename`` and load it in ONNX Runtime.

    Args:
        module (nn.Module): A SLaK backbone after ``switch_to_deploy()``, or a wrapper of
            :mod:`.wrappers` around a segmentor or detector whose backbone is.
        inputs (Tensor): Example input, ``(N, 3, H, W)`` float32 on the CPU.
        filename (str): Where to write the ``.onnx`` file.
        threads (int, optional): ONNX Runtime intra-op threads (compare with
            ``torch.set_num_threads``). Defaults to None (ONNX Runtime's choice).
        dynamic (bool): Export with dynamic batch, height and width. Defaults to False.

    Returns:
        OrtRunner: ``runner(inputs)`` runs one batch and returns the outputs as numpy arrays.

    Example:
        >>> backbone.eval().switch_to_deploy()
        >>> x = torch.randn(1, 3, 512, 512)
        >>> run = onnx_runtime_twin(backbone, x, '/tmp/slak-t.onnx', threads=2)
        >>> outputs = run(x)
    """
    with traceable(module):
        export_onnx(module, inputs, filename, dynamic=dynamic)
    return OrtRunner(filename, threads)
