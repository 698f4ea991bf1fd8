"""DynamicSparsityHook: ERK and SNIP masks, exact prune/regrow (random and gradient growth), AMP,
accumulation, resume and DDP."""
import copy
import math
import os
import re
import uuid

import pytest
import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper

from mmslak.engine import DynamicSparsityHook
from mmslak.engine.runner import CheckedRunner
from mmslak.models.utils import erk_densities, prune_and_regrow, snip_masks
from mmslak.registry import MODELS, OPTIM_WRAPPERS
from mmslak.utils.torch_compat import add_step_hooks
from tests.distributed import free_port, run_ranks
from ..conftest import needs_cpu_grad_scaler
from ..test_models.test_slak_sparse import BackboneRegressor

TINY = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64]),
            kernel_size=[13, 11, 9, 7, 3], sparse=True)
# at 70% sparsity the tiny SLaK has both dense and sparse layers under ERK
HOOK = dict(type='mmslak.DynamicSparsityHook', sparsity=0.7, prune_rate=0.5,
            update_interval=2, seed=0, plot=False)


class Recorder(Hook):
    """Copies of the masks, weights and AdamW moments of the backbone after every iteration."""

    def __init__(self):
        self.records = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        model = getattr(runner.model, 'module', runner.model)
        state = runner.optim_wrapper.optimizer.state
        record = {}
        for name, param in model.backbone.named_parameters():
            mask = model.backbone.get_buffer(name + '_mask') if param.dim() in (2, 4) else None
            if mask is not None:
                record[name] = dict(mask=mask.clone(), weight=param.detach().clone(),
                                    **{k: v.clone() for k, v in state.get(param, {}).items()
                                       if k in ('exp_avg', 'exp_avg_sq')})
        self.records.append(record)


def make_runner(work_dir, hook=HOOK, max_iters=6, optim_wrapper=None, resume=None, **kwargs):
    """A runner training the tiny sparse SLaK with the hook and a Recorder (``runner.rec``).

    mmslak's runner: it resumes through mmslak's safe loader (mmengine's own load is torch's
    ``weights_only=True`` on torch >= 2.6, which refuses a Runner checkpoint).
    """
    data = [dict(inputs=torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i)))
            for i in range(8)]
    recorder = Recorder()
    runner = CheckedRunner(
        model=BackboneRegressor(TINY),
        work_dir=str(work_dir),
        # a name of its own: runners built within the same second would share one logger (and
        # the first one's log file)
        experiment_name=f'sparsity-{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=data, batch_size=2,
                              sampler=dict(type='DefaultSampler', seed=0),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=optim_wrapper or dict(
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        custom_hooks=[hook, recorder],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        randomness=dict(seed=0),
        resume=resume is not None, load_from=resume, **kwargs)
    runner.rec = recorder
    return runner


def sparsity_hook(runner):
    return next(hook for hook in runner.hooks if isinstance(hook, DynamicSparsityHook))


def assert_masked_weights_zero(record):
    for name, entry in record.items():
        assert not entry['weight'][~entry['mask']].any(), name


def test_erk_densities_equal_the_closed_form():
    # hand-computed: eps = 5050 / 220 makes 'a' denser than 1; then eps = 4950 / 200
    densities = erk_densities({'a': (10, 10), 'b': (100, 100)}, 0.5)
    assert densities['a'] == 1 and densities['b'] == pytest.approx(0.495)
    shapes = {name: param.shape for name, param in MODELS.build(TINY).named_parameters()
              if param.dim() in (2, 4)}
    densities = erk_densities(shapes, 0.3)
    numel = {name: math.prod(shape) for name, shape in shapes.items()}
    raw = {name: sum(shape) / numel[name] for name, shape in shapes.items()}
    sparse = [name for name in shapes if densities[name] < 1]
    dense = [name for name in shapes if densities[name] == 1]
    assert sparse and dense
    eps = densities[sparse[0]] / raw[sparse[0]]
    for name in sparse:
        assert densities[name] == pytest.approx(eps * raw[name])
    assert all(eps * raw[name] >= 1 for name in dense)
    kept = sum(densities[name] * numel[name] for name in shapes)
    assert kept == pytest.approx(0.3 * sum(numel.values()))


def test_prune_removes_the_smallest_active_and_regrows_as_many_inactive():
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(20, 30, generator=generator) < 0.4
    weight = torch.randn(20, 30, generator=generator) * mask
    before = mask.clone()
    pruned, regrown = prune_and_regrow(weight, mask, 0.3, generator)
    active = int(before.sum())
    assert pruned.numel() == regrown.numel() == math.ceil(0.3 * active)
    assert int(mask.sum()) == active
    flat_before = before.view(-1)
    assert flat_before[pruned].all()
    kept = flat_before.clone()
    kept[pruned] = False
    magnitude = weight.view(-1).abs()
    assert magnitude[pruned].max() <= magnitude[kept].min()
    assert not kept[regrown].any() and mask.view(-1)[regrown].all()


def mask_changes(records, name='stages.3.0.pwconv1.weight'):
    """Whether the mask of ``name`` changed in each iteration after the first."""
    return [not torch.equal(records[i][name]['mask'], records[i - 1][name]['mask'])
            for i in range(1, len(records))]


def test_updates_move_weights_keeping_exact_density(tmp_path):
    runner = make_runner(tmp_path)
    runner.train()
    with open(os.path.join(runner.log_dir, f'{runner.timestamp}.log')) as log:
        logged = log.read()
    records = runner.rec.records
    shapes = {name: entry['mask'].shape for name, entry in records[0].items()}
    densities = erk_densities(shapes, 0.3)
    for record in records:
        assert_masked_weights_zero(record)
        for name, entry in record.items():
            assert int(entry['mask'].sum()) == round(densities[name] * entry['mask'].numel())
    # updates after optimizer steps 2, 4 and 6 only, at the cosine-decayed rates
    assert mask_changes(records) == [True, False, True, False, True]
    for step, rate in ((2, 0.3762), (4, 0.1288), (6, 0.0050)):
        assert f'optimizer step {step}: prune rate {rate:.4f}' in logged
    assert re.search(r'DynamicSparsityHook took \d+\.\d\d s of the \d+\.\d s of training '
                     r'\(\d+\.\d\d%\)', logged)
    name = 'stages.3.0.pwconv1.weight'
    # regrown positions: weight zero and AdamW moments reset, as for the pruned ones
    for step in (1, 3):
        old, new = records[step - 1][name], records[step][name]
        moved = old['mask'] != new['mask']
        assert moved.any()
        assert not new['weight'][moved].any()
        assert not new['exp_avg'][moved].any() and not new['exp_avg_sq'][moved].any()
    assert sparsity_hook(runner).steps == 6


def test_masks_stay_fixed_after_stop_at(tmp_path):
    runner = make_runner(tmp_path, hook=dict(HOOK, update_interval=1, stop_at=0.5))
    runner.train()
    assert mask_changes(runner.rec.records) == [True, True, False, False, False]


def test_masks_hold_under_bf16_autocast(tmp_path):
    runner = make_runner(tmp_path, max_iters=4, optim_wrapper=dict(
        type='mmslak.CPUAmpOptimWrapper', dtype='bfloat16',
        optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)))
    runner.train()
    for record in runner.rec.records:
        assert_masked_weights_zero(record)
    assert any(entry['weight'].any() for entry in runner.rec.records[-1].values())


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    runner = make_runner(tmp_path, max_iters=8, optim_wrapper=dict(
        accumulative_counts=2, optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)))
    runner.train()
    # optimizer steps after iterations 2, 4, 6, 8; updates every 2 steps: after 4 and 8
    assert mask_changes(runner.rec.records) == [False, False, True, False, False, False, True]
    assert sparsity_hook(runner).steps == 4


def test_resume_equals_the_uninterrupted_run_and_loads_into_sparse_slak(tmp_path):
    make_runner(tmp_path / 'straight', max_iters=4).train()
    make_runner(tmp_path / 'resumed', max_iters=4,
                resume=str(tmp_path / 'straight' / 'iter_2.pth')).train()
    one, other = (torch.load(tmp_path / run / 'iter_4.pth', weights_only=False)
                  for run in ('straight', 'resumed'))
    assert one['dynamic_sparsity']['steps'] == 4
    for key, value in one['state_dict'].items():
        assert torch.equal(value, other['state_dict'][key]), key
    for key in one['dynamic_sparsity']:
        assert torch.equal(torch.as_tensor(one['dynamic_sparsity'][key]),
                           torch.as_tensor(other['dynamic_sparsity'][key])), key
    # the updates at steps 3 and 4 moved masks after the resume point
    start = torch.load(tmp_path / 'straight' / 'iter_2.pth', weights_only=False)['state_dict']
    key = 'backbone.stages.3.0.pwconv1.weight_mask'
    assert not torch.equal(start[key], one['state_dict'][key])
    # a dynamic checkpoint fine-tunes with sparse=True unchanged
    backbone = MODELS.build(TINY)
    backbone.load_state_dict({k[len('backbone.'):]: v for k, v in one['state_dict'].items()})
    assert torch.equal(backbone.stages[3][0].pwconv1.weight_mask, one['state_dict'][key])


def _rank(rank, world_size, port, out_dir, hook):
    # mmengine's own initialisation selects a CUDA device: the test makes the gloo group
    os.environ['LOCAL_RANK'] = str(rank)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world_size)
    try:
        runner = make_runner(
            os.path.join(out_dir, f'rank{rank}'), hook=hook, max_iters=4, launcher='pytorch',
            cfg=dict(model_wrapper_cfg=dict(type='mmslak.CPUDistributedDataParallel',
                                            find_unused_parameters=True)))
        runner.train()
        torch.save(runner.rec.records, os.path.join(out_dir, f'records{rank}.pth'))
    finally:
        dist.destroy_process_group()


# SNIP and gradient growth read the gradients DDP all-reduced: identical on every process
@pytest.mark.parametrize('hook', [HOOK, dict(HOOK, distribution='snip', growth='gradient')],
                         ids=['ERK-random', 'snip-gradient'])
def test_two_processes_hold_identical_masks_after_every_update(tmp_path, hook):
    run_ranks(_rank, 2, free_port(), str(tmp_path), hook)
    ranks = [torch.load(tmp_path / f'records{rank}.pth') for rank in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 4
    for one, other in zip(*ranks):
        for name, entry in one.items():
            assert torch.equal(entry['mask'], other[name]['mask']), name
            assert torch.equal(entry['weight'], other[name]['weight']), name
    name = 'stages.3.0.pwconv1.weight'
    assert not torch.equal(ranks[0][0][name]['mask'], ranks[0][-1][name]['mask'])


def test_unknown_options_and_unmatched_targets_are_named(tmp_path):
    with pytest.raises(ValueError, match='distribution must be one of'):
        DynamicSparsityHook(distribution='magnitude')
    with pytest.raises(ValueError, match='growth must be one of'):
        DynamicSparsityHook(growth='momentum')
    runner = make_runner(tmp_path, hook=dict(HOOK, targets=['no_such_layer']), max_iters=1)
    with pytest.raises(ValueError, match='matches none of the masked weights'):
        runner.train()


@OPTIM_WRAPPERS.register_module(force=True)
class InfAtSecondStepOptimWrapper(OptimWrapper):
    """Loss scaling with torch's CPU GradScaler; the second step sees an infinite gradient."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scaler = torch.amp.GradScaler('cpu')
        self.calls = 0

    def backward(self, loss, **kwargs):
        self.scaler.scale(loss).backward(**kwargs)

    def step(self, **kwargs):
        self.calls += 1
        if self.calls == 2:
            self.optimizer.param_groups[0]['params'][0].grad.fill_(float('inf'))
        self.scaler.step(self.optimizer)
        self.scaler.update()


@needs_cpu_grad_scaler
def test_steps_skipped_by_the_loss_scaler_do_not_count(tmp_path):
    runner = make_runner(tmp_path, hook=dict(HOOK, update_interval=1), max_iters=4,
                         optim_wrapper=dict(type='mmslak.InfAtSecondStepOptimWrapper',
                                            optimizer=dict(type='AdamW', lr=1e-2)))
    runner.train()
    assert mask_changes(runner.rec.records) == [False, True, True]
    assert sparsity_hook(runner).steps == 3


class FirstBatch(Hook):
    """A copy of the model and the batch of the first iteration, before any optimizer step."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx == 0:
            self.model, self.batch = copy.deepcopy(runner.model), data_batch


class StepGradients(Hook):
    """``|gradient|`` of every masked backbone weight just before each optimizer step."""

    def __init__(self):
        self.grads = []

    def before_train(self, runner):
        add_step_hooks(runner.optim_wrapper.optimizer, before=self._record)
        self.backbone = runner.model.backbone

    def _record(self, optimizer, args, kwargs):
        self.grads.append({name: param.grad.abs().clone()
                           for name, param in self.backbone.named_parameters()
                           if param.dim() in (2, 4) and param.grad is not None})


def test_snip_masks_keep_the_global_top_scores_with_ties_to_the_earlier():
    scores = {'a': torch.tensor([[3., 1.], [2., 2.]]), 'b': torch.tensor([2., 0., 5.])}
    masks = snip_masks(scores, 4 / 7)
    assert masks['a'].tolist() == [[True, False], [True, True]]
    assert masks['b'].tolist() == [False, False, True]


def test_snip_keeps_the_highest_weight_times_gradient_of_the_first_batch(tmp_path):
    first = FirstBatch()
    runner = make_runner(tmp_path, hook=dict(HOOK, distribution='snip', update_interval=None),
                         max_iters=2)
    runner.register_custom_hooks([first])
    runner.train()
    # the direct computation: loss of the first batch on the initial weights
    model = first.model
    losses = model._run_forward(model.data_preprocessor(first.batch, True), mode='loss')
    model.parse_losses(losses)[0].backward()
    names = list(runner.rec.records[0])
    params = dict(model.backbone.named_parameters())
    scores = torch.cat([(params[n] * params[n].grad).abs().reshape(-1) for n in names])
    expected = torch.zeros(scores.numel(), dtype=torch.bool)
    expected[scores.topk(round(0.3 * scores.numel())).indices] = True
    for record in runner.rec.records:
        kept = torch.cat([record[n]['mask'].reshape(-1) for n in names])
        assert torch.equal(kept, expected)
        assert_masked_weights_zero(record)
    # the gradients of the pruned weights were zeroed before the first step too
    for entry in runner.rec.records[0].values():
        assert not entry['exp_avg'][~entry['mask']].any()
    assert sparsity_hook(runner).steps == 2


def test_gradient_growth_keeps_the_top_gradient_inactive_positions():
    generator = torch.Generator().manual_seed(0)
    mask = torch.rand(20, 30, generator=generator) < 0.4
    weight = torch.randn(20, 30, generator=generator) * mask
    scores = torch.randint(0, 4, (20, 30), generator=generator).float()  # many ties
    before = mask.clone()
    pruned, regrown = prune_and_regrow(weight, mask, 0.3, growth_scores=scores)
    count = math.ceil(0.3 * int(before.sum()))
    assert pruned.numel() == regrown.numel() == count and int(mask.sum()) == int(before.sum())
    candidates = before.view(-1).clone()
    candidates[pruned] = False
    inactive = (~candidates).nonzero().squeeze(1)
    # highest score first, the lower index first among equal scores
    order = sorted(inactive.tolist(), key=lambda i: (-scores.view(-1)[i].item(), i))
    assert regrown.tolist() == order[:count]


def test_gradient_growth_regrows_where_the_gradient_of_the_update_step_is_largest(tmp_path):
    grads = StepGradients()
    runner = make_runner(tmp_path, hook=dict(HOOK, growth='gradient'), max_iters=4)
    runner.register_custom_hooks([grads])
    runner.train()
    records = runner.rec.records
    densities = erk_densities({n: e['mask'].shape for n, e in records[0].items()}, 0.3)
    assert mask_changes(records) == [True, False, True]
    checked = 0
    for step in (2, 4):  # the updates
        old, new, grad = records[step - 2], records[step - 1], grads.grads[step - 1]
        for name, entry in new.items():
            mask = entry['mask']
            assert int(mask.sum()) == round(densities[name] * mask.numel())
            regrown = mask & ~old[name]['mask']
            if densities[name] < 1 and regrown.any():
                assert grad[name][regrown].min() >= grad[name][~mask].max(), name
                checked += 1
    assert checked > 10
