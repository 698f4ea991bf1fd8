"""Helpers of the multi-process tests: free loopback ports, processes bounded in time."""
import os
import signal
import socket
import subprocess
import time

import torch.multiprocessing as mp

# gloo binds to the address of the host name unless told otherwise: keep it on the loopback
LOOPBACK_ENV = dict(GLOO_SOCKET_IFNAME='lo', MASTER_ADDR='127.0.0.1')


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_ranks(fn, world_size, *args, timeout=120):
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` spawned processes.

    Raises:
        TimeoutError: If they have not all ended within ``timeout`` seconds (they are killed).
    """
    os.environ.update(LOOPBACK_ENV)
    context = mp.start_processes(fn, (world_size, *args), nprocs=world_size, join=False,
                                 start_method='spawn')
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=max(deadline - time.monotonic(), 0.1)):
            if time.monotonic() > deadline:
                raise TimeoutError(f'{world_size} processes still running after {timeout} s')
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


def run_launcher(command, cwd, env, timeout=300):
    """Run a launcher script (torchrun and its workers) in its own session, killed on timeout.

    Returns:
        str: Its standard output and error.
    """
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            raise AssertionError(f'{command} ran past {timeout} s:\n{output[-3000:]}')
    assert proc.returncode == 0, output[-5000:]
    return output
