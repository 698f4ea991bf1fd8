"""What the tools change in a config for the machine: launcher without CUDA, mixed precision."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmslak.apis import cpu_model_wrapper_cfg, cpu_process_group, enable_amp, prepare_launcher
from mmslak.engine import CPUAmpOptimWrapper, CPUDistributedDataParallel

without_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                                  reason='tests what a machine without CUDA does')


def test_default_wrapper_becomes_the_cpu_wrapper():
    assert cpu_model_wrapper_cfg(None, find_unused_parameters=True) == dict(
        type='mmslak.CPUDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True)
    assert cpu_model_wrapper_cfg(
        dict(type='MMDistributedDataParallel', device_ids=[0], detect_anomalous_params=True)) == \
        dict(type='mmslak.CPUDistributedDataParallel', detect_anomalous_params=True)


def test_a_wrapper_that_needs_a_gpu_is_refused():
    with pytest.raises(ValueError, match="'MMFullyShardedDataParallel' cannot wrap a model on "
                       'the CPU'):
        cpu_model_wrapper_cfg(dict(type='MMFullyShardedDataParallel'))


def test_single_process_runs_are_left_alone():
    cfg = Config(dict(launcher='none', model_wrapper_cfg=None))
    prepare_launcher(cfg)
    assert cfg.model_wrapper_cfg is None and 'env_cfg' not in cfg


def test_cpu_wrapper_refuses_a_model_off_the_cpu():
    with pytest.raises(ValueError, match=r"parameters on \['meta'\]"):
        CPUDistributedDataParallel(torch.nn.Linear(2, 2, device='meta'))


@pytest.mark.parametrize('launcher,variables', [
    ('slurm', dict(SLURM_PROCID='3', SLURM_NTASKS='4', SLURM_LOCALID='1', MASTER_ADDR='node0')),
    ('mpi', dict(OMPI_COMM_WORLD_RANK='3', OMPI_COMM_WORLD_SIZE='4',
                 OMPI_COMM_WORLD_LOCAL_RANK='1', MASTER_ADDR='node0')),
])
def test_launcher_variables_become_torch_ones(launcher, variables, monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    cpu_process_group._export_launcher_environment(launcher)
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'],
            os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == \
        ('3', '4', '1', 'node0', '29500')


def test_missing_launcher_variables_are_named(monkeypatch):
    monkeypatch.delenv('SLURM_PROCID', raising=False)
    with pytest.raises(KeyError, match='SLURM_PROCID'):
        cpu_process_group._export_launcher_environment('slurm')
    with pytest.raises(ValueError, match="Unknown launcher 'ssh'"):
        cpu_process_group.init_cpu_process_group('ssh')


def _optim_cfg(**wrapper):
    return Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1), **wrapper)))


@without_cuda
def test_amp_on_cpu_trains_under_bfloat16_autocast(mmlogs):
    cfg = _optim_cfg(type='OptimWrapper')
    enable_amp(cfg, force=True)
    assert cfg.optim_wrapper.type == 'mmslak.CPUAmpOptimWrapper'
    assert 'bfloat16 autocast' in mmlogs.text
    model = torch.nn.Linear(4, 3)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, CPUAmpOptimWrapper)
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before) and model.weight.dtype == torch.float32


@without_cuda
def test_a_gpu_amp_recipe_trains_in_bfloat16_on_cpu():
    cfg = _optim_cfg(type='AmpOptimWrapper', loss_scale='dynamic')
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'mmslak.CPUAmpOptimWrapper'
    assert cfg.optim_wrapper.dtype == 'bfloat16' and 'loss_scale' not in cfg.optim_wrapper
    plain = _optim_cfg(type='OptimWrapper')
    enable_amp(plain)
    assert plain.optim_wrapper.type == 'OptimWrapper'


def test_cpu_amp_wrapper_refuses_float32():
    with pytest.raises(ValueError, match='bfloat16 or float16'):
        CPUAmpOptimWrapper(dtype='float32', optimizer=torch.optim.SGD([torch.zeros(1)], lr=1))
