"""Latency, throughput and peak memory of SLaK on mmslak's ops against the reference ops and the
FLOP floor.

Two modes: ``--arch`` times the backbone alone, ``--config`` the full model of a config (its
backbone forms swapped in place). Every row is a same-weights, same-process measurement:

* ``plain``: the same model in its training form on the ``torch`` ops
  (:func:`mmslak.ops.use_ops`), NCHW: the network as plain PyTorch computes it (depthwise
  ``F.conv2d`` + BN branches per block, eager), what a GPU runs;
* ``mmslak``: the model in its training form, and in its deploy form after
  ``switch_to_deploy()``, on the ops ``MMSLAK_OPS`` selects (``auto``: the CPU backend where it
  applies);
* ``onnxruntime`` (``--onnx``): the deploy form exported to ONNX (:mod:`mmslak.deployment`) and
  run by ONNX Runtime on as many threads as PyTorch, float32 NCHW inference; of a detector the
  backbone and neck, which is what exports.

Each mmslak row is timed in every requested precision (``--dtype``) and input layout
(``--memory-format``); the plain reference runs NCHW, as the official code does, in each
precision. Precisions: ``fp32``; ``fp16`` and ``bf16``, the model and input cast (inference
only); ``amp-fp16`` and ``amp-bf16``, a float32 model under ``torch.autocast``, whose training
step scales the fp16 loss with a ``torch.amp.GradScaler`` as mmengine's ``AmpOptimWrapper``
does. ``channels_last`` converts the input and the 4-D weights. A precision the device lacks
natively is skipped with the reason printed: on a CPU, bf16 needs oneDNN's AVX512-BF16 or AMX
kernels and fp16 its AVX512-FP16 or AMX-FP16 ones. On CUDA PyTorch's defaults hold: float32
convolutions may use TF32, matrix multiplies do not.

Each row reports the median, min and max over ``--runs`` timed runs (after ``--warmup``), the
images per second at the median, the peak memory of one run, and two ratios: the plain row's
median over this row's (speed-up), and the row's time over the floor. The floor is the time
the row's dense arithmetic would take at the machine's matrix-multiply rate: 2 x dense MACs
(convolutions and linear layers, counted by ``torch.utils.flop_counter``) / the GFLOP/s of a
large matrix multiply (the faster of ``torch.mm`` and oneDNN). That matmul is timed in every
round beside the rows, and the ratio is the median over the rounds of the row's time over
that round's floor (of the precision the row computes in), so that a shared machine whose
speed drifts gives a fair ratio. With ``--train-step`` the rows time a forward, backward and
optimizer step, and the floor counts 3x the forward MACs (forward, input gradients, weight
gradients).

Peak memory: on CUDA, the growth of ``torch.cuda.max_memory_allocated`` over one run; on CPU,
the growth of the process's resident set over one run (VmHWM, reset through
``/proc/self/clear_refs`` after trimming the allocator), which counts activations and library
workspaces but not the weights; ``n/a`` where Linux does not offer that.

Example::

    python tools/analysis_tools/benchmark.py --arch tiny --shape 512 512 --threads 2 \\
        --json work_dirs/benchmark_slak-t.json
"""
import argparse
import copy
import ctypes
import itertools
import json
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from typing import NamedTuple

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from rich.console import Console
from rich.progress import Progress
from torch.utils.flop_counter import FlopCounterMode

from mmslak.analysis.op_benchmark import slak_op_cases, time_case
from mmslak.analysis.op_profile import CATEGORIES, op_breakdown
from mmslak.models.backbones import SLaK
from mmslak.ops import kernel_isa, use_ops
from mmslak.ops.triton import _why_not_installed
from mmslak.registry import MODELS
from mmslak.utils.torch_compat import autocast as autocast_context
from mmslak.utils.torch_compat import autocast_supports, grad_scaler


class Precision(NamedTuple):
    """How a row computes: in ``dtype``, by casting the model or by autocast over float32."""
    dtype: torch.dtype
    autocast: bool


PRECISIONS = {
    'fp32': Precision(torch.float32, False),
    'fp16': Precision(torch.float16, False),
    'bf16': Precision(torch.bfloat16, False),
    'amp-fp16': Precision(torch.float16, True),
    'amp-bf16': Precision(torch.bfloat16, True),
}
MEMORY_FORMATS = {'nchw': torch.contiguous_format, 'channels_last': torch.channels_last}
OP_DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}


class Row(NamedTuple):
    """One timed variant; the plain reference always runs NCHW."""
    impl: str
    form: str
    dtype: str
    memory_format: str = 'nchw'


def matmul_key(precision):
    """The precision whose matmul rate is a row's floor: the one it computes in."""
    return precision.removeprefix('amp-')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Time SLaK: mmslak training and deploy forms against a plain NCHW eager '
        'SLaK and the FLOP floor of the machine.')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--arch', default='tiny', choices=sorted(SLaK.arch_settings),
                        help='time this SLaK backbone alone (default: tiny)')
    source.add_argument('--config', help='time the full model of this config')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input height and width (default: 512 512)')
    parser.add_argument('--batch', type=int, default=1, help='images per batch (default: 1)')
    parser.add_argument('--form', choices=['train', 'deploy', 'both'], default='both',
                        help='mmslak forms to time (default: both)')
    parser.add_argument('--dtype', nargs='+', choices=list(PRECISIONS), default=['fp32'],
                        help='precisions: fp16 and bf16 cast model and input (inference only), '
                        'amp-fp16 and amp-bf16 autocast a float32 model (default: fp32)')
    parser.add_argument('--memory-format', nargs='+', choices=list(MEMORY_FORMATS),
                        default=['nchw'], help='input (and 4-D weight) layouts of the mmslak '
                        'rows; the plain reference stays NCHW (default: nchw)')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--runs', type=int, default=10, help='timed runs (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed runs (default: 2)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads for PyTorch (default: its own choice)')
    parser.add_argument('--train-step', action='store_true',
                        help='time forward + backward + AdamW step instead of inference')
    parser.add_argument('--with-cp', action='store_true',
                        help='checkpoint the backbone blocks (both implementations)')
    parser.add_argument('--no-plain', action='store_true', help='skip the plain reference')
    parser.add_argument('--onnx', action='store_true',
                        help='add a row of the deploy form exported to ONNX and run by ONNX '
                        'Runtime (fp32, NCHW; a detector exports its backbone and neck)')
    parser.add_argument('--matmul-size', type=int, default=4096,
                        help='side of the square matmul that measures the rate (default: 4096)')
    parser.add_argument('--profile', type=int, nargs='?', const=3, default=0, metavar='RUNS',
                        help='after timing, profile each row over RUNS calls (default: 3) and '
                        'print where its time goes (depthwise, linear, norm/layout, ...)')
    parser.add_argument('--op', action='store_true',
                        help="time the large-kernel depthwise op alone at each stage's shape of "
                        '--arch, per backend, forward and forward + backward (--dtype: fp32, '
                        'fp16, bf16)')
    parser.add_argument('--peak-tflops', type=float,
                        help="with --op: the device's fp32 FMA peak, to print the fraction of it "
                        'each row reaches')
    parser.add_argument('--json', metavar='OUT', help='also write the results to this file')
    parser.add_argument('--plot', metavar='PNG',
                        help='also draw the rows (median ms, min - max) as a bar chart into this '
                        'file, titled with the model, the device and the date (not with --op)')
    args = parser.parse_args(argv)
    if args.plot and args.op:
        parser.error('--plot draws the model rows: not with --op')
    if args.op:
        if args.config or args.train_step or not set(args.dtype) <= set(OP_DTYPES):
            parser.error(f'--op times the backbone\'s op alone: no --config or --train-step; '
                         f'--dtype among {" ".join(OP_DTYPES)}')
    if args.train_step and args.form != 'train':
        if args.form == 'deploy':
            parser.error('--train-step needs the training form (--form train)')
        args.form = 'train'
    cast = [name for name in args.dtype if name != 'fp32' and not PRECISIONS[name].autocast]
    if args.train_step and cast:
        parser.error(f'--train-step keeps float32 weights; for {" ".join(cast)} time the mixed '
                     f'precision rows instead: {" ".join("amp-" + name for name in cast)}')
    if args.onnx and (args.train_step or args.device == 'cuda' or 'fp32' not in args.dtype):
        parser.error('--onnx times float32 CPU inference: drop --train-step and --device cuda, '
                     'and keep fp32 in --dtype')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda, but CUDA is not available to this PyTorch')
    return args


class Workload:
    """Builds the model of a run and the callable to time on it.

    Args:
        args (argparse.Namespace): The command line.
    """

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        if args.config:
            cfg = Config.fromfile(args.config)
            init_default_scope(cfg.get('default_scope', 'mmseg'))
            cfg.model.get('backbone', {}).pop('init_cfg', None)
            self.model = MODELS.build(cfg.model)
        else:
            self.model = MODELS.build(dict(type='mmslak.SLaK', arch=args.arch))
        if args.device == 'cpu':
            self.model = revert_sync_batchnorm(self.model)
        for backbone in self.backbones(self.model):
            backbone.with_cp = args.with_cp

    @staticmethod
    def backbones(model):
        """The mmslak backbones in ``model``."""
        return [module for module in model.modules() if isinstance(module, SLaK)]

    def variant(self, impl, form):
        """A copy of the model in the ``train`` or ``deploy`` form (``plain``: the training form,
        which :meth:`step_fn` runs on the ``torch`` ops)."""
        model = copy.deepcopy(self.model).train(self.args.train_step)
        if impl != 'plain' and form == 'deploy':
            for backbone in self.backbones(model):
                backbone.switch_to_deploy()
        return model

    def onnx_fn(self, model, directory):
        """The callable that runs ``model`` (a deploy-form variant) exported to ONNX in ONNX
        Runtime, with PyTorch's thread count; a detector exports its backbone and neck.

        Args:
            model (nn.Module): The variant, from :meth:`variant`.
            directory (str): Where to write the ``.onnx`` file.
        """
        from mmslak.deployment import onnx_runtime_twin
        from mmslak.deployment.wrappers import export_module
        module = model if isinstance(model, SLaK) else export_module(model)[0]
        x = self.inputs(PRECISIONS['fp32'], torch.contiguous_format)
        run = onnx_runtime_twin(module.eval(), x, osp.join(directory, 'model.onnx'),
                                threads=torch.get_num_threads())
        return lambda: run(x)

    def inputs(self, precision, memory_format):
        """A random input batch in ``memory_format``, cast for a cast inference model."""
        args = self.args
        x = torch.randn(args.batch, 3, *args.shape, device=self.device)
        x = x.contiguous(memory_format=memory_format)
        return x if precision.autocast else x.to(precision.dtype)

    @staticmethod
    def forward(model, x, samples):
        """Inference output (``mode='tensor'`` for a full model)."""
        if isinstance(model, SLaK):
            return model(x)
        return model(x, samples, mode='tensor')

    @staticmethod
    def loss(model, x, samples):
        """A scalar training loss: the config's losses on the samples, or a feature loss."""
        if isinstance(model, SLaK):
            return sum(out.float().square().mean() for out in model(x))
        return model.parse_losses(model.loss(x, samples))[0]

    def step_fn(self, model, precision, memory_format='nchw', ops='auto'):
        """The callable to time: an inference forward or a training step.

        Args:
            model (nn.Module): The variant to run, from :meth:`variant`.
            precision (str): A key of :data:`PRECISIONS`.
            memory_format (str): A key of :data:`MEMORY_FORMATS`. Defaults to ``'nchw'``.
            ops (str): The ops' backend (:func:`mmslak.ops.use_ops`) of every call; ``'auto'``
                keeps what ``MMSLAK_OPS`` selects. Defaults to ``'auto'``.
        """
        fn = self._step_fn(model, precision, memory_format)
        if ops == 'auto':
            return fn

        def on_ops():
            with use_ops(ops):
                fn()

        return on_ops

    def _step_fn(self, model, precision, memory_format):
        precision, memory_format = PRECISIONS[precision], MEMORY_FORMATS[memory_format]
        device_type, dtype, autocast = self.device.type, *precision
        x = self.inputs(precision, memory_format)
        samples = None if isinstance(model, SLaK) else synthetic_samples(model, x)
        weights_dtype = torch.float32 if autocast else dtype
        model = model.to(self.device, weights_dtype).to(memory_format=memory_format)
        if not self.args.train_step:
            model.eval()

            @torch.no_grad()
            def infer():
                with autocast_context(device_type, dtype, autocast):
                    self.forward(model, x, samples)

            return infer
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range
        scaler = grad_scaler(device_type) if dtype == torch.float16 else None

        def train_step():
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device_type, dtype, autocast):
                loss = self.loss(model, x, samples)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

        return train_step

    def dense_macs(self, model):
        """Dense multiply-accumulates per image: of a forward, or 3x that for a training step.

        The forward is counted on the ``torch`` ops, whose convolutions and linear layers the
        counter sees; a training step counts a whole batch (batch norms need
        more than one image) and adds the input and weight gradients, each as many MACs as the
        forward (PyTorch's counter overcounts grouped-convolution gradients by the group count).
        """
        model = model.to(self.device, torch.float32)
        batch = self.args.batch if self.args.train_step else 1
        x = torch.randn(batch, 3, *self.args.shape, device=self.device)
        samples = None if isinstance(model, SLaK) else synthetic_samples(model, x)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad(), use_ops('torch'):
            if self.args.train_step:
                self.loss(model.train(), x, samples)
            else:
                self.forward(model.eval(), x, samples)
        return counter.get_total_flops() / 2 / batch * (3 if self.args.train_step else 1)


def synthetic_samples(model, x):
    """Random ground truth for ``x``: segmentation maps, or boxes and masks for a detector."""
    from mmengine.structures import InstanceData, PixelData
    height, width = x.shape[-2:]
    meta = dict(img_shape=(height, width), pad_shape=(height, width),
                batch_input_shape=(height, width), scale_factor=(1., 1.))
    if hasattr(model, 'decode_head'):
        from mmseg.structures import SegDataSample
        num_classes = model.decode_head.num_classes
        return [
            SegDataSample(
                gt_sem_seg=PixelData(data=torch.randint(num_classes, (1, height, width))),
                metainfo=meta).to(x.device) for _ in range(len(x))
        ]
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    samples = []
    for _ in range(len(x)):
        boxes = random_boxes(3, height, width)
        masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
        for mask, (x1, y1, x2, y2) in zip(masks, boxes.long().tolist()):
            mask[y1:y2, x1:x2] = 1
        instances = InstanceData(bboxes=boxes, labels=torch.zeros(len(boxes), dtype=torch.long),
                                 masks=BitmapMasks(masks.numpy(), height, width))
        samples.append(DetDataSample(gt_instances=instances, metainfo=meta).to(x.device))
    return samples


def random_boxes(num, height, width):
    """``num`` random ``x1, y1, x2, y2`` boxes, at least 16 pixels a side, inside the image."""
    size = torch.tensor([width, height], dtype=torch.float32)
    top_left = torch.rand(num, 2) * (size - 16)
    extent = 16 + torch.rand(num, 2) * size / 2
    return torch.cat([top_left, torch.minimum(top_left + extent, size)], 1)


def synchronize(device):
    """Wait for the device's queued work (a no-op on CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device):
    """Seconds one call of ``fn`` takes, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _status_kib(field):
    """A field of ``/proc/self/status`` in KiB."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise OSError(f'/proc/self/status has no {field}')


def peak_memory_mib(fn, device):
    """Peak memory growth over one call of ``fn`` in MiB (see the module docstring); or None."""
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)  # hand freed pages back, so RSS tracks use
        with open('/proc/self/clear_refs', 'w') as clear_refs:
            clear_refs.write('5')  # reset VmHWM to the current RSS
        base = _status_kib('VmRSS')
        fn()
        return (_status_kib('VmHWM') - base) / 1024
    except OSError:
        return None


def onednn_native(dtype):
    """Whether oneDNN has native CPU kernels for ``dtype`` (half precisions need AVX-512 or AMX
    extensions)."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    if dtype == torch.float16:  # the query is missing from torch < 2.2, whose oneDNN has none
        return hasattr(torch.ops.mkldnn, '_is_mkldnn_fp16_supported') and \
            torch.ops.mkldnn._is_mkldnn_fp16_supported()
    return True


def matmul_fns(device, dtype, size):
    """A ``size``-square matmul per library (torch.mm; oneDNN on CPU), to time the rate."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    fns = {'torch.mm': lambda: torch.mm(a, b)}
    if device.type == 'cpu' and hasattr(torch.ops.mkldnn, '_linear_pointwise') and \
            onednn_native(dtype):
        fns['oneDNN'] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, 'none', [], '')
    return fns


def unsupported_reason(device, precision):
    """Why the device cannot time ``precision`` fairly (no native kernels), or None.

    Args:
        device (torch.device): The device timed.
        precision (str): A key of :data:`PRECISIONS`.
    """
    dtype = PRECISIONS[precision].dtype
    if dtype == torch.float32:
        return None
    if device.type == 'cuda':
        if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            return 'this GPU has no bfloat16 support'
        return None
    if PRECISIONS[precision].autocast and not autocast_supports('cpu', dtype):
        return f'torch {torch.__version__} has no {precision[4:]} autocast on the CPU'
    if onednn_native(dtype):
        return None
    if dtype == torch.bfloat16:
        return ('this CPU has no native bfloat16 kernels in oneDNN (needs AVX512-BF16 or AMX): '
                'bf16 would run emulated, slower than fp32, so time fp32 here')
    return ('this CPU has no native float16 kernels in oneDNN (needs AVX512-FP16 or AMX-FP16); '
            'its fallback would time conversions, not the model')


def device_name(device):
    """The GPU's or the CPU's model name."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kernels():
    """The instruction sets the CPU paths run with: the depthwise kernel's (None: oneDNN),
    ATen's, and any limit set on oneDNN's (``ONEDNN_MAX_CPU_ISA``) or MKL's
    (``MKL_ENABLE_INSTRUCTIONS``)."""
    return dict(depthwise=kernel_isa() or 'oneDNN', aten=torch.backends.cpu.get_cpu_capability(),
                onednn_max_isa=os.environ.get('ONEDNN_MAX_CPU_ISA', 'unlimited'),
                mkl_instructions=os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'unlimited'))


def format_profile(results):
    """The ``--profile`` breakdowns as a table: ms per call and share of each category."""
    header = ('impl', 'form', 'dtype', 'layout', *CATEGORIES, 'total ms')
    lines = [header]
    for r in filter(lambda r: 'profile_ms' in r, results):
        ms = r['profile_ms']
        lines.append((r['impl'], r['form'], r['dtype'], r['memory_format'],
                      *(f"{ms[c]:.1f} ({ms[c] / ms['total']:.0%})" for c in CATEGORIES),
                      f"{ms['total']:.1f}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return '\n'.join('  '.join(cell.rjust(width) for cell, width in zip(line, widths))
                     for line in lines)


def plan_rows(args, device):
    """The :class:`Row` of every variant to time, skipping precisions the device lacks."""
    forms = ['train', 'deploy'] if args.form == 'both' else [args.form]
    rows = []
    for name in args.dtype:
        reason = unsupported_reason(device, name)
        if reason:
            print(f'skipping {name}: {reason}')
            continue
        rows += [Row('plain', 'train', name)] if not args.no_plain else []
        rows += [Row('mmslak', form, name, layout) for form in forms
                 for layout in args.memory_format]
        rows += [Row('onnxruntime', 'deploy', name)] if args.onnx and name == 'fp32' else []
    return rows


def measure(fns, device, args):
    """Time the rows and the matmuls of the floor round-robin, then probe the rows' memory.

    Every round times each row once and each library's matmul of every precision once, so a
    change of the machine's speed (other load, clock) hits the rows and the floor alike.

    Args:
        fns (dict[Row, Callable]): The callable of each row, from :meth:`Workload.step_fn`.
        device (torch.device): The device timed.
        args (argparse.Namespace): The command line.

    Returns:
        tuple[dict, dict, dict]: Seconds per round of each row, GFLOP/s per round of each
        ``(precision, library)`` matmul, and the peak memory of each row.
    """
    rows = list(fns)
    matmuls = {(key, lib): fn for key in sorted({matmul_key(row[2]) for row in rows})
               for lib, fn in matmul_fns(device, PRECISIONS[key].dtype, args.matmul_size).items()}
    for fn in matmuls.values():
        fn()  # oneDNN's and MKL's first calls set up kernels and buffers
    times = {row: [] for row in rows}
    rates = {key: [] for key in matmuls}
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task('timing', total=len(rows) * (args.warmup + args.runs))
        for run in range(args.warmup + args.runs):
            for key, fn in matmuls.items():
                seconds = timed(fn, device)
                if run >= args.warmup:
                    rates[key].append(2 * args.matmul_size**3 / seconds / 1e9)
            for row, fn in fns.items():
                seconds = timed(fn, device)
                if run >= args.warmup:
                    times[row].append(seconds)
                progress.advance(task)
    memory = {row: peak_memory_mib(fn, device) for row, fn in fns.items()}
    return times, rates, memory


def round_rates(rates):
    """Per precision, the matmul rate of each round: the fastest library's in that round."""
    rounds = {}
    for (dtype, _), values in rates.items():
        best = rounds.setdefault(dtype, values)
        rounds[dtype] = [max(a, b) for a, b in zip(best, values)]
    return rounds


def summarise_rates(rates):
    """Per precision, the median GFLOP/s of each library's matmul and of the per-round best."""
    summary = {}
    for (dtype, lib), values in rates.items():
        summary.setdefault(dtype, {})[lib] = statistics.median(values)
    for dtype, values in round_rates(rates).items():
        summary[dtype]['best'] = statistics.median(values)
    return summary


def summarise(rows, times, memory, macs, rates, args):
    """One result dict per row, with the ratios to the plain row and to the floor.

    The floor of a round is the row's dense FLOPs at that round's matmul rate; the ratio to
    the floor is the median over the rounds of the row's time over its floor, and ``floor_ms``
    the floor at the median rate.
    """
    results = []
    per_round = round_rates(rates)
    for key in rows:
        row = Row(*key)
        ms = [t * 1e3 for t in times[key]]
        median = statistics.median(ms)
        flop = 2 * macs[row.form] * args.batch
        rate = per_round[matmul_key(row.dtype)]
        ratios = [t * r * 1e9 / flop for t, r in zip(times[key], rate)]
        results.append(
            dict(row._asdict(), median_ms=median, min_ms=min(ms), max_ms=max(ms),
                 images_per_s=args.batch / median * 1e3, peak_memory_mib=memory[key],
                 floor_ms=flop / statistics.median(rate) / 1e6,
                 ratio_to_floor=statistics.median(ratios)))
    for result in results:
        plain = [r for r in results if r['impl'] == 'plain' and r['dtype'] == result['dtype']]
        result['speedup_vs_plain'] = plain[0]['median_ms'] / result['median_ms'] if plain else None
    return results


def format_table(results):
    """The results as a fixed-width text table."""
    header = ('impl', 'form', 'dtype', 'layout', 'median ms', 'min ms', 'max ms', 'img/s',
              'peak MiB', 'vs plain', 'vs floor')
    lines = [header]
    for r in results:
        memory = f"{r['peak_memory_mib']:.0f}" if r['peak_memory_mib'] is not None else 'n/a'
        speedup = f"{r['speedup_vs_plain']:.2f}x" if r['speedup_vs_plain'] else '-'
        lines.append((r['impl'], r['form'], r['dtype'], r['memory_format'],
                      f"{r['median_ms']:.1f}", f"{r['min_ms']:.1f}", f"{r['max_ms']:.1f}",
                      f"{r['images_per_s']:.2f}", memory, speedup,
                      f"{r['ratio_to_floor']:.2f}x"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return '\n'.join('  '.join(cell.rjust(width) for cell, width in zip(line, widths))
                     for line in lines)


def model_name(args):
    return args.config or f'SLaK-{args.arch} backbone'


def print_report(args, device, macs, rates, results):
    """Print the setting, the MAC counts, the matmul rates and the table.

    Args:
        args (argparse.Namespace): The command line.
        device (torch.device): The device timed.
        macs (dict[str, float]): Dense MACs per image per form.
        rates (dict[str, dict[str, float]]): Matmul GFLOP/s per precision and library.
        results (list[dict]): The rows, from :func:`summarise`.
    """
    mode = 'training step (forward + backward + AdamW)' if args.train_step else 'inference'
    print(f'{model_name(args)}, {mode}, input {args.batch}x3x{args.shape[0]}x{args.shape[1]}, '
          f'{device_name(device)}, {torch.get_num_threads()} threads, torch {torch.__version__}')
    if device.type == 'cpu':
        print('CPU kernels: ' + ', '.join(f'{name} {isa}' for name, isa in cpu_kernels().items()))
    for form, count in macs.items():
        print(f'dense MACs per image, {form} form: {count / 1e9:.2f} G')
    for name, rate in rates.items():
        libs = ', '.join(f'{lib} {value:.0f}' for lib, value in rate.items() if lib != 'best')
        print(f'{name} matmul rate ({args.matmul_size}^3, median of the rounds): '
              f'{rate["best"]:.0f} GFLOP/s ({libs})')
    print(format_table(results))
    if any('profile_ms' in r for r in results):
        print(f'where the time goes (ms per call over {args.profile} profiled calls; the profiler '
              'slows small operators):')
        print(format_profile(results))


def write_json(path, args, device, macs, rates, results):
    """Write the setting and the results to ``path`` (arguments as for :func:`print_report`)."""
    report = dict(
        model=model_name(args), mode='train-step' if args.train_step else 'inference',
        input_shape=[args.batch, 3, *args.shape], device=device_name(device),
        device_type=device.type, threads=torch.get_num_threads(),
        cpu_kernels=cpu_kernels() if device.type == 'cpu' else None,
        torch_version=torch.__version__, with_cp=args.with_cp, runs=args.runs,
        warmup=args.warmup, matmul_gflops=rates,
        dense_gmacs_per_image={form: count / 1e9 for form, count in macs.items()}, rows=results)
    with open(path, 'w') as out:
        json.dump(report, out, indent=2)
    print(f'results written to {path}')


def plot_results(path, args, device, results):
    """Draw the rows as horizontal bars (median ms, min - max whiskers) into ``path``.

    The title holds what the figure was measured on: the model and input, the device, the
    threads and the date, so that a figure copied into the docs keeps its conditions.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [' '.join(filter(None, (r['impl'], r['form'], r['dtype'],
                                     r['memory_format'] if r['impl'] == 'mmslak' else None)))
              for r in results]
    medians = [r['median_ms'] for r in results]
    spread = [[m - r['min_ms'] for m, r in zip(medians, results)],
              [r['max_ms'] - m for m, r in zip(medians, results)]]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(results) + 1.6))
    ax.barh(range(len(results)), medians, xerr=spread, color='tab:blue', capsize=3)
    for i, r in enumerate(results):
        speedup = f", {r['speedup_vs_plain']:.2f}x" if r['speedup_vs_plain'] else ''
        note = f"{r['median_ms']:.1f} ms{speedup}"
        ax.text(r['max_ms'], i, '  ' + note, va='center', fontsize=8)
    ax.set_yticks(range(len(results)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(r['max_ms'] for r in results) * 1.35)
    ax.set_xlabel('ms per ' + ('training step' if args.train_step else 'forward pass') +
                  ' (median; whiskers: min - max)')
    ax.set_title(f'{model_name(args)}, {args.batch}x3x{args.shape[0]}x{args.shape[1]}\n'
                 f'{device_name(device)}, {torch.get_num_threads()} threads, '
                 f'{time.strftime("%Y-%m-%d")}', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f'plot written to {path}')


def op_backends(device, dtype='fp32'):
    """The backends the op benchmark times on ``device`` in ``dtype``: PyTorch on NCHW and
    channels-last, and mmslak's own backend there (``cpu`` for float32; ``triton`` on CUDA, if
    installed)."""
    if device.type == 'cpu':
        return ['torch', 'torch_channels_last'] + (['cpu'] if dtype == 'fp32' else [])
    return ['torch', 'torch_channels_last'] + ([] if _why_not_installed() else ['triton'])


def run_op_mode(args):
    """Time the depthwise op per stage, precision, direction and backend; print and return the
    rows (``ms``, GFLOP/s of the dense taps, fraction of ``--peak-tflops``, speed-up over the
    faster PyTorch layout)."""
    device = torch.device(args.device)
    cases = slak_op_cases(SLaK(arch=args.arch), args.shape, args.batch)
    rows = []
    with Progress(transient=True) as progress:
        task = progress.add_task('timing the op', total=len(cases) * len(args.dtype) * 2)
        for case, dtype, direction in itertools.product(
                cases, args.dtype, ['forward', 'forward+backward']):
            times = {backend: time_case(case, backend, OP_DTYPES[dtype], direction, device,
                                        args.runs, args.warmup)
                     for backend in op_backends(device, dtype)}
            native = min(times['torch'], times['torch_channels_last'])
            for backend, ms in times.items():
                gflops = 2 * case.macs(direction) / ms / 1e6
                rows.append(dict(stage=case.stage, shape=list(case.shape),
                                 kernels=[list(k) for k in case.kernels], dtype=dtype,
                                 direction=direction, backend=backend, ms=ms, gflops=gflops,
                                 peak_fraction=gflops / 1e3 / args.peak_tflops
                                 if args.peak_tflops else None, vs_native=native / ms))
            progress.advance(task)
    lines = [('stage', 'input', 'dtype', 'direction', 'backend', 'ms', 'GFLOP/s', 'of peak',
              'vs native')]
    for r in rows:
        lines.append((str(r['stage']), 'x'.join(map(str, r['shape'])), r['dtype'], r['direction'],
                      r['backend'], f"{r['ms']:.3f}", f"{r['gflops']:.1f}",
                      f"{r['peak_fraction']:.1%}" if r['peak_fraction'] else '-',
                      f"{r['vs_native']:.2f}x"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    print(f'SLaK-{args.arch} depthwise op, batch {args.batch}, input {args.shape[0]}x'
          f'{args.shape[1]}, {device_name(device)}, torch {torch.__version__}')
    print('\n'.join('  '.join(cell.ljust(width) for cell, width in zip(line, widths))
                    for line in lines))
    if args.json:
        with open(args.json, 'w') as out:
            json.dump(dict(mode='op', arch=args.arch, batch=args.batch, shape=args.shape,
                           device=device_name(device), torch=torch.__version__,
                           peak_tflops=args.peak_tflops, rows=rows), out, indent=1)
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.op:
        return run_op_mode(args)
    workload = Workload(args)
    device = workload.device
    rows = plan_rows(args, device)
    forms = sorted({row.form for row in rows})
    macs = {form: workload.dense_macs(workload.variant('mmslak', form)) for form in forms}
    models = {row: workload.variant(*row[:2]) for row in rows}
    with tempfile.TemporaryDirectory() as onnx_dir:
        fns = {row: workload.onnx_fn(models[row], onnx_dir) if row.impl == 'onnxruntime' else
               workload.step_fn(models[row], *row[2:], ops='torch' if row.impl == 'plain' else
                                'auto') for row in rows}
        times, rates, memory = measure(fns, device, args)
        results = summarise(rows, times, memory, macs, rates, args)
        if args.profile:  # PyTorch's profiler sees no operator inside ONNX Runtime
            for row, result in zip(rows, results):
                if row.impl != 'onnxruntime':
                    result['profile_ms'] = op_breakdown(fns[row], models[row], args.profile)
    rates = summarise_rates(rates)
    print_report(args, device, macs, rates, results)
    if args.json:
        write_json(args.json, args, device, macs, rates, results)
    if args.plot:
        plot_results(args.plot, args, device, results)


if __name__ == '__main__':
    main()
