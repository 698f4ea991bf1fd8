"""Where the time of a SLaK run goes: milliseconds per kind of operation, from PyTorch's profiler.

Forward work is attributed by module: everything run inside a large-kernel module (the
``large_kernel`` modules of mmslak's and the plain backbone, the C kernels included) is
``depthwise``, inside a stem or downsampling layer ``stem/downsample``, inside a LayerNorm
``norm/layout``. Backward work is attributed by the autograd node that runs it, the optimizer
step by its profiler range, and the remaining operators by name: matrix multiplies, linear
layers and GELU are ``linear``, LayerNorms, permutes and copies ``norm/layout``. An autograd
node does not name the module it came from: the backward of ``nn.Conv2d`` (the plain
backbone's depthwise convolutions, either backbone's stem and downsampling) and of the BNs is
``other``. What no operator covers (Python between the calls) is ``unattributed``: the wall
time less the rest.
"""
import time
from contextlib import ExitStack

import torch.nn as nn
from torch.profiler import ProfilerActivity, profile, record_function

LABEL = 'mmslak.profile::'
CATEGORIES = ('depthwise', 'linear', 'norm/layout', 'stem/downsample', 'optimizer', 'other',
              'unattributed')
# (substring of an enclosing range's name, category), nearest range first
_CONTEXT_RULES = (('Optimizer.', 'optimizer'), ('DepthwiseConvs', 'depthwise'),
                  ('LinearBackward', 'linear'), ('AddmmBackward', 'linear'),
                  ('MmBackward', 'linear'), ('GeluBackward', 'linear'),
                  ('LayerNormBackward', 'norm/layout'), ('PermuteBackward', 'norm/layout'))
# (substring of an operator's own name, category)
_OP_RULES = (('linear', 'linear'), ('addmm', 'linear'), ('aten::mm', 'linear'),
             ('aten::bmm', 'linear'), ('gelu', 'linear'), ('layer_norm', 'norm/layout'),
             ('permute', 'norm/layout'), ('copy_', 'norm/layout'), ('contiguous', 'norm/layout'),
             ('clone', 'norm/layout'))


def module_category(name, module):
    """The category of a module's forward work, from its qualified name and type, or None."""
    parts = name.split('.')
    if 'large_kernel' in parts:
        return 'depthwise'
    if 'downsample_layers' in parts:
        return 'stem/downsample'
    if 'LayerNorm' in type(module).__name__:
        return 'norm/layout'
    return None


def _label_forward(model):
    """Wrap the forward of every categorised module in a profiler range named after its
    category; return the hook handles. (Containers, whose forward nobody calls, are left out.)"""
    handles = []
    for name, module in model.named_modules():
        category = module_category(name, module)
        if category is None or isinstance(module, (nn.ModuleDict, nn.ModuleList)):
            continue
        ranges = []

        def enter(module, args, label=LABEL + category, ranges=ranges):
            ranges.append(record_function(label))
            ranges[-1].__enter__()

        def leave(module, args, output, ranges=ranges):
            ranges.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter),
                    module.register_forward_hook(leave)]
    return handles


def _first_match(name, rules):
    return next((category for text, category in rules if text in name), None)


def event_category(event):
    """The category of a profiler event's own time (see the module docstring): that of the
    outermost labelled module around it, else of the nearest autograd node or optimizer range,
    else of its operator."""
    labelled = context = None
    node = event
    while node is not None:
        if node.name.startswith(LABEL):
            labelled = node.name[len(LABEL):]
        context = context or _first_match(node.name, _CONTEXT_RULES)
        node = node.cpu_parent
    return labelled or context or _first_match(event.name, _OP_RULES) or 'other'


def op_breakdown(fn, model, runs=3):
    """Milliseconds per call of ``fn`` in each of :data:`CATEGORIES`, over ``runs`` profiled
    calls (the profiler slows small operators down: compare categories, not the wall time,
    with unprofiled timings).

    Args:
        fn (Callable[[], Any]): One inference or training step of ``model``.
        model (nn.Module): The model ``fn`` runs (its modules are labelled while profiling).
        runs (int): Profiled calls. Defaults to 3.

    Returns:
        dict[str, float]: Milliseconds per call for each category, and ``'total'`` (the wall
        time per profiled call).
    """
    with ExitStack() as stack:
        for handle in _label_forward(model):
            stack.callback(handle.remove)
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            start = time.perf_counter()
            for _ in range(runs):
                fn()
            wall = time.perf_counter() - start
    totals = dict.fromkeys(CATEGORIES, 0.)
    for event in profiler.events():
        totals[event_category(event)] += event.self_cpu_time_total / 1e3
    breakdown = {category: ms / runs for category, ms in totals.items()}
    breakdown['unattributed'] = max(0., wall * 1e3 / runs - sum(breakdown.values()))
    breakdown['total'] = wall * 1e3 / runs
    return breakdown
