"""ONNX Runtime (CPU) sessions for exported models, with a chosen number of threads."""
import os.path as osp

import numpy as np
import torch


def ort_session(filename, threads=None):
    """An ONNX Runtime CPU session of an exported model.

    Args:
        filename (str): The ``.onnx`` file.
        threads (int, optional): Intra-op threads (one inter-op thread); None lets ONNX Runtime
            choose (one per physical core). Defaults to None.

    Returns:
        onnxruntime.InferenceSession: The session, all graph optimisations on.

    Raises:
        FileNotFoundError: If the file does not exist.
        ImportError: If onnxruntime is not installed, naming the extra that installs it.
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'ONNX file not found: {filename}')
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError('ONNX Runtime is not installed: pip install "mmslak[deploy]"') \
            from error
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(filename, options, providers=['CPUExecutionProvider'])


class OrtRunner:
    """Runs an exported model on one input batch, as a function.

    Args:
        filename (str): The ``.onnx`` file (one input).
        threads (int, optional): Intra-op threads; None lets ONNX Runtime choose.
            Defaults to None.

    Example:
        >>> run = OrtRunner('work_dirs/export/end2end.onnx', threads=2)
        >>> outputs = run(torch.randn(1, 3, 512, 512))  # list of numpy arrays
    """

    def __init__(self, filename, threads=None):
        self.session = ort_session(filename, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, inputs):
        """Run the model.

        Args:
            inputs (Tensor | np.ndarray): The ``(N, 3, H, W)`` float32 batch.

        Returns:
            list[np.ndarray]: The outputs, in the graph's order.
        """
        if torch.is_tensor(inputs):
            inputs = inputs.detach().cpu().numpy()
        return self.session.run(self.output_names,
                                {self.input_name: np.ascontiguousarray(inputs, np.float32)})
