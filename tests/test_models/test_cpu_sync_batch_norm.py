"""CPUSyncBatchNorm over 2 gloo processes equals one BatchNorm over the concatenated batch."""
import os

import pytest
import torch
import torch.distributed as dist

from mmslak.models.layers import CPUSyncBatchNorm
from tests.distributed import free_port, run_ranks

# the two processes hold batches of different sizes
ROWS = [slice(0, 3), slice(3, 8)]


def _data():
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(8, 4, 5, 6, generator=generator) * 3 + 2 for _ in range(2)]
    grads = [torch.randn(8, 4, 5, 6, generator=generator) for _ in range(2)]
    return inputs, grads


def _init_norm(norm):
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2, 4))
        norm.bias.copy_(torch.linspace(-1, 1, 4))
    return norm.train()


def _train_steps(norm, inputs, grads, rows):
    """Two forward/backward passes; the outputs and input gradients of each."""
    outputs, input_grads = [], []
    for x, grad in zip(inputs, grads):
        x = x[rows].clone().requires_grad_()
        out = norm(x)
        out.backward(grad[rows])
        outputs.append(out.detach())
        input_grads.append(x.grad)
    return outputs, input_grads


def _rank(rank, world_size, port, out_dir):
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=world_size)
    try:
        norm = _init_norm(CPUSyncBatchNorm(4, momentum=0.3))
        outputs, input_grads = _train_steps(norm, *_data(), ROWS[rank])
        torch.save(dict(outputs=outputs, input_grads=input_grads,
                        weight_grad=norm.weight.grad, bias_grad=norm.bias.grad,
                        buffers=dict(norm.named_buffers())),
                   os.path.join(out_dir, f'rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_batch_norm_over_the_global_batch(tmp_path):
    run_ranks(_rank, 2, free_port(), str(tmp_path))
    reference = _init_norm(torch.nn.BatchNorm2d(4, momentum=0.3))
    outputs, input_grads = _train_steps(reference, *_data(), slice(None))
    ranks = [torch.load(tmp_path / f'rank{rank}.pth') for rank in range(2)]
    for rank, rows in enumerate(ROWS):
        for step in range(2):
            torch.testing.assert_close(ranks[rank]['outputs'][step], outputs[step][rows])
            torch.testing.assert_close(ranks[rank]['input_grads'][step], input_grads[step][rows])
        for name, buffer in reference.named_buffers():
            torch.testing.assert_close(ranks[rank]['buffers'][name], buffer)
    # the loss is the sum over both processes: its parameter gradients add up
    torch.testing.assert_close(ranks[0]['weight_grad'] + ranks[1]['weight_grad'],
                               reference.weight.grad)
    torch.testing.assert_close(ranks[0]['bias_grad'] + ranks[1]['bias_grad'],
                               reference.bias.grad)


def test_one_process_and_eval_mode_are_a_plain_batch_norm():
    inputs, _ = _data()
    norm = _init_norm(CPUSyncBatchNorm(4))
    reference = _init_norm(torch.nn.BatchNorm2d(4))
    torch.testing.assert_close(norm(inputs[0]), reference(inputs[0]))
    torch.testing.assert_close(norm.eval()(inputs[1]), reference.eval()(inputs[1]))


def test_convert_keeps_parameters_buffers_and_keys():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.SyncBatchNorm(4).eval())
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    converted = CPUSyncBatchNorm.convert_sync_batchnorm(model)
    assert type(converted[1]) is CPUSyncBatchNorm and not converted[1].training
    assert converted.state_dict().keys() == state.keys()
    for name, tensor in converted.state_dict().items():
        assert torch.equal(tensor, state[name])


def test_convert_refuses_mmcv_sync_bn():
    mmcv_ops = pytest.importorskip('mmcv.ops', reason='needs mmcv built with its ops')
    # its constructor needs a process group; the converter looks at the type only
    mmsyncbn = mmcv_ops.SyncBatchNorm.__new__(mmcv_ops.SyncBatchNorm)
    torch.nn.Module.__init__(mmsyncbn)
    with pytest.raises(ValueError, match=r'\(MMSyncBN\) needs CUDA'):
        CPUSyncBatchNorm.convert_sync_batchnorm(torch.nn.Sequential(mmsyncbn))
