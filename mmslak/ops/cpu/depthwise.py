"""The CPU backend of the large-kernel depthwise op: the compiled kernels of
:mod:`.kernel_library` (channels-last float32) and oneDNN's convolutions.

oneDNN runs SLaK's long depthwise kernels (51 x 5 and 5 x 51) well below the machine's
multiply-add rate, adds their outputs in separate passes, and differentiates them an order of
magnitude slower still. The C kernels copy each block of channels, with zero margins, into a
row-major and a column-major slab, so that every kernel slides along a contiguous axis with the
inputs of its taps in registers or L1, and taps that read only padding are skipped. One call
computes several kernels: their sum plus a bias (inference, and the input gradient through the
flipped kernels) or their separate outputs (training), and another their kernel gradients.
"""
import ctypes

import torch
import torch.nn.functional as F

from .kernel_library import _library


def _pointers(tensors):
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


def _integers(values):
    return (ctypes.c_int * len(values))(*values)


class PackedKernels:
    """Kernels ``(C, 1, kh, kw)`` packed for the C code: ``[blocks of L channels][taps along
    the sliding axis][other taps][L]``, L being the lanes of the kernel library in use, sliding
    along H when at least as high as wide. (Kernel gradients come back as ``[taps along the
    sliding axis][other taps][C padded to L]``.)

    Packing once and passing the result to :func:`conv_sum` saves repacking fixed kernels at
    every call. Only valid where a kernel library is in use (see :func:`why_not_kernel`).

    Args:
        kernels (Sequence[Tensor]): The kernels, all sizes odd.
        bias (Tensor, optional): Bias ``(C, )`` of their sum. Defaults to None.
    """

    def __init__(self, kernels, bias=None):
        self.lanes = _library().lanes
        self.channels = kernels[0].shape[0]
        self.padded = -(-self.channels // self.lanes) * self.lanes
        self.vertical = [k.shape[2] >= k.shape[3] for k in kernels]
        self.taps = [(k.shape[2], k.shape[3]) if v else (k.shape[3], k.shape[2])
                     for k, v in zip(kernels, self.vertical)]
        self.packed = [self.pack(k.detach().float(), v) for k, v in zip(kernels, self.vertical)]
        self.bias = None if bias is None else self.pad(bias)

    def pack(self, kernel, vertical):
        taps = kernel[:, 0].permute(1, 2, 0) if vertical else kernel[:, 0].permute(2, 1, 0)
        taps = F.pad(taps, (0, self.padded - self.channels))
        return taps.unflatten(2, (-1, self.lanes)).permute(2, 0, 1, 3).contiguous()

    def unpack(self, packed, vertical):
        taps = packed[..., :self.channels]
        return (taps.permute(2, 0, 1) if vertical else taps.permute(2, 1, 0)).unsqueeze(1)

    def geometry(self):
        """The ``ka, kb, vertical`` arrays of the C calls."""
        return (_integers([a for a, _ in self.taps]), _integers([b for _, b in self.taps]),
                _integers(self.vertical))

    def pad(self, vector):
        return F.pad(vector.detach().float(), (0, self.padded - self.channels)).contiguous()


def _run(shape, function, *args, extra=0):
    """Run a C kernel (a name of :class:`KernelLibrary`) over the channel blocks on
    ``torch.get_num_threads()`` OpenMP threads.

    Each thread gets its own slabs (and ``extra`` more floats of scratch, for gradients); the
    C function takes the scratch, its per-thread stride (and, with ``extra``, the slab size)
    and the thread count after ``args``.
    """
    n, c, h, w = shape
    library = _library()
    workers = max(1, min(torch.get_num_threads(), -(-c // library.lanes)))
    slab = 3 * (h + 2 * library.margin) * (w + 2 * library.margin) * library.lanes
    scratch = torch.empty(workers, slab + extra)
    sizes = [scratch.stride(0)] + ([slab] if extra else [])
    getattr(library, function)(*args, scratch.data_ptr(), *sizes, workers)


def _forward(inputs, kernels, total):
    """``bias + sum_t conv(inputs[t], kernel t)`` if ``total``, else each ``conv(x, kernel t)``
    (``kernels.bias`` is the bias; None for zeros)."""
    n, c, h, w = inputs[0].shape
    outs = [torch.empty_like(inputs[0], memory_format=torch.channels_last)
            for _ in range(1 if total else len(kernels.packed))]
    # held: the C code reads it through a raw pointer
    bias = inputs[0].new_zeros(kernels.padded) if kernels.bias is None else kernels.bias
    _run(inputs[0].shape, 'forward', _pointers(inputs), _pointers(outs),
         int(total), n, h, w, c, len(kernels.packed), _pointers(kernels.packed),
         *kernels.geometry(), bias.data_ptr())
    return outs


def why_not_kernel(x, dtypes=(torch.float32, )):
    """Why the compiled kernels cannot take ``x``, or None if they can: they need a non-empty
    4-D channels-last CPU tensor of one of ``dtypes`` and a kernel library built here.

    Args:
        x (Tensor): The input.
        dtypes (Sequence[torch.dtype]): The dtypes accepted (the kernels compute in float32; a
            caller that widens other inputs first names them). Defaults to float32.
    """
    if x.device.type != 'cpu' or x.dim() != 4 or x.numel() == 0:
        return 'the kernels take non-empty 4-D CPU tensors'
    if x.dtype not in dtypes:
        return f'the kernels take {" or ".join(map(str, dtypes))}, not {x.dtype}'
    if not x.is_contiguous(memory_format=torch.channels_last):
        return 'the kernels take channels-last inputs'
    if _library() is None:
        return 'no depthwise kernel runs on this machine (MMSLAK_CPU_KERNEL, see the log)'
    return None


def conv_sum(x, kernels):
    """The bias plus the sum of stride-1 'same' depthwise convolutions of ``x``, in one pass.

    Only where :func:`why_not_kernel` finds nothing; no autograd graph is recorded.

    Args:
        x (Tensor): Float32 input of shape ``(N, C, H, W)``, channels-last.
        kernels (PackedKernels): The kernels, packed with the bias of their sum for the kernel
            library in use.

    Returns:
        Tensor: The channels-last output.
    """
    if kernels.channels != x.shape[1]:
        raise ValueError(f'kernels for {kernels.channels} channels, input of {x.shape[1]}')
    if kernels.lanes != _library().lanes:
        raise ValueError(f'kernels packed for {kernels.lanes}-lane registers, but the '
                         f'{_library().isa} kernel in use has {_library().lanes}: pack them again')
    return _forward([x] * len(kernels.packed), kernels, total=True)[0]


class _DepthwiseConvs(torch.autograd.Function):
    """Separate bias-free depthwise convolutions of one input, differentiable."""

    @staticmethod
    def forward(ctx, x, *kernels):
        ctx.save_for_backward(x, *kernels)
        ctx.packed = PackedKernels(kernels)  # its layout serves the kernel gradients too
        return tuple(_forward([x] * len(kernels), ctx.packed, total=False))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, *kernels = ctx.saved_tensors
        grads = [torch.zeros_like(x) if g is None else g.contiguous(
            memory_format=torch.channels_last) for g in grads]
        grad_x = None
        if ctx.needs_input_grad[0]:
            flipped = PackedKernels([k.flip(2, 3) for k in kernels])
            grad_x = _forward(grads, flipped, total=True)[0]
        return (grad_x, *_kernel_grads(x, grads, ctx.packed, ctx.needs_input_grad[1:]))


def _kernel_grads(x, grads, packed, needed):
    """The gradients of the kernels that need one (None for the others).

    Args:
        x (Tensor): The channels-last input of the forward pass.
        grads (Sequence[Tensor]): The channels-last gradient of each kernel's output.
        packed (PackedKernels): The kernels as packed for the forward pass (for their layout).
        needed (Sequence[bool]): Which kernels need a gradient.
    """
    if not any(needed):
        return [None] * len(needed)
    n, c, h, w = x.shape
    outs = [x.new_empty(a, b, packed.padded) for a, b in packed.taps]
    _run(x.shape, 'kernel_grad', x.data_ptr(), _pointers(grads),
         _pointers(outs), n, h, w, c, len(outs), *packed.geometry(),
         extra=sum(a * b for a, b in packed.taps) * packed.lanes)
    return [packed.unpack(out, vertical).contiguous() if need else None
            for out, vertical, need in zip(outs, packed.vertical, needed)]


def convs(x, kernels):
    """Bias-free stride-1 'same' depthwise convolutions of ``x``, one channels-last output per
    kernel, differentiable (once) with respect to ``x`` and the kernels.

    Only where :func:`why_not_kernel` finds nothing and the kernels are float32.

    Args:
        x (Tensor): Float32 input of shape ``(N, C, H, W)``, channels-last.
        kernels (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.

    Returns:
        tuple[Tensor]: The outputs.
    """
    return _DepthwiseConvs.apply(x, *kernels)
