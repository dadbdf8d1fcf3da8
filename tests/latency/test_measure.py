"""How measured predictors time a call: warm-up, blocks, median; CUDA's events checked with a simulated GPU clock."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nni_proxyless.latency import ModuleCall
from nni_proxyless.latency.measure import (MeasuredPredictor, MeasuredSubnetLatency, cpu_block, cuda_block,
                                          interleaved_medians, median_ms)

from conftest import ConvSpace


class SimulatedGpu:
    """A GPU clock (ms) that kernels advance, and CUDA-like events that read it only once the GPU has finished.

    ``durations`` gives each kernel's time in turn (the last one repeats); ``log`` records what happens, in order.
    """

    def __init__(self, *durations: float):
        self.durations, self.now, self.pending, self.log = list(durations), 0.0, 0.0, []

    def run(self) -> None:
        self.pending += self.durations.pop(0) if len(self.durations) > 1 else self.durations[0]
        self.log.append('run')

    def synchronize(self) -> None:
        self.now, self.pending = self.now + self.pending, 0.0
        self.log.append('synchronize')

    def event(self, enable_timing: bool = False) -> 'SimulatedGpu._Event':
        assert enable_timing
        return SimulatedGpu._Event(self)

    class _Event:
        def __init__(self, gpu: 'SimulatedGpu'):
            self.gpu, self.time, self.done = gpu, None, False

        def record(self) -> None:
            self.time, self.done = self.gpu.now + self.gpu.pending, False  # queued after the pending kernels
            self.gpu.log.append('record')

        def synchronize(self) -> None:
            self.gpu.synchronize()
            self.done = True

        def elapsed_time(self, end: 'SimulatedGpu._Event') -> float:
            if not end.done:
                raise RuntimeError('elapsed_time before the end event completed')
            return end.time - self.time


def test_cuda_timing_is_the_median_per_call_of_event_timed_blocks():
    """3 warm-up kernels (not counted), a probe call, then 5 blocks of ceil(1 ms / 0.25 ms) = 4 calls; one slow
    block (a kernel of 5 ms) does not move the median: 0.25 ms per call."""
    durations = [9.0] * 3 + [0.25] + [0.25] * 4 * 2 + [5.0] + [0.25] * 3 + [0.25] * 4 * 2
    gpu = SimulatedGpu(*durations)
    result = median_ms(cuda_block(gpu.run, event=gpu.event), warmup=3, repeats=5, min_repeat_ms=1.0)
    assert result == pytest.approx(0.25)
    assert gpu.log[:6] == ['record', 'run', 'run', 'run', 'record', 'synchronize']  # warm-up done before timing
    assert gpu.log.count('run') == 3 + 1 + 5 * 4


def test_cuda_timing_waits_for_the_gpu_before_reading_events():
    """Every block's events are read after the GPU finished it (reading earlier raises in the simulation)."""
    gpu = SimulatedGpu(0.5)
    assert median_ms(cuda_block(gpu.run, event=gpu.event), warmup=0, repeats=3, min_repeat_ms=2.0) == 0.5
    assert gpu.log.count('record') == 2 * (1 + 3) and gpu.log.count('synchronize') == 1 + 3
    assert gpu.log.count('run') == 1 + 3 * math.ceil(2.0 / 0.5)


def test_median_ignores_blocks_slowed_by_other_work():
    """Blocks disturbed by other processes (here 3 of 9 take 10 times longer) do not change the median."""
    times = iter([1.0, 0.1] + [0.1, 1.0, 0.1, 0.1, 1.0, 0.1, 0.1, 1.0, 0.1])
    calls = []
    result = median_ms(lambda number: calls.append(number) or next(times), warmup=2, repeats=9, min_repeat_ms=1.0)
    assert result == 0.1 and calls == [2, 1] + [10] * 9


def test_cpu_block_times_the_calls_it_runs():
    """A CPU block runs the call `number` times and reports a positive time per call."""
    calls = []
    per_call = cpu_block(lambda: calls.append(1))(25)
    assert len(calls) == 25 and per_call > 0 and math.isfinite(per_call)


def test_predictor_times_with_the_requested_threads(tmp_path):
    """While calls are timed, torch runs with the requested thread count; afterwards the old count is back."""
    seen, before = [], torch.get_num_threads()

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(torch.get_num_threads())
            return x

    predictor = MeasuredPredictor('cpu', threads=1, repeats=2, warmup=1, cache_dir=tmp_path)
    predictor.predict([ModuleCall(Probe(), (torch.ones(1),), {})])
    assert seen and set(seen) == {1} and torch.get_num_threads() == before


def test_predictor_puts_modules_in_eval_mode_without_gradients_and_restores_them(tmp_path):
    """Calls are timed in eval mode without autograd; the module's own mode is restored afterwards."""
    modes = []

    class Probe(nn.Module):
        def forward(self, x):
            modes.append((self.training, torch.is_grad_enabled()))
            return x

    probe = Probe().train()
    predictor = MeasuredPredictor('cpu', repeats=1, warmup=0, cache_dir=tmp_path)
    predictor.predict([ModuleCall(probe, (torch.ones(1),), {})])
    assert set(modes) == {(False, False)} and probe.training


def test_measured_subnet_latency_times_each_architecture_once(monkeypatch):
    """REINFORCE's measured LAT(m) freezes and times each architecture once, then answers from its cache."""
    timed = []
    monkeypatch.setattr(MeasuredPredictor, 'predict', lambda self, calls: timed.append(calls[0].module) or [1.5])
    from nni_proxyless.supernet import build_supernet
    from nni_proxyless.arch import ArchParameters
    latency = MeasuredSubnetLatency(build_supernet(ConvSpace(), ArchParameters(seed=0)), (1, 1, 8, 8))
    architecture = {'conv1': 'k5', 'conv2': 'k1'}
    assert latency(architecture) == latency(dict(architecture)) == 1.5 and len(timed) == 1
    assert latency({'conv1': 'skip', 'conv2': 'k1'}) == 1.5 and len(timed) == 2
    assert isinstance(timed[0].conv1, nn.Conv2d) and timed[0].conv1.kernel_size == (5, 5)


def test_rounds_spread_a_burst_of_other_work_over_the_calls():
    """Two calls, 6 timed blocks each in 3 rounds, and a burst of other work that slows the 4 blocks timed first
    (10 times): both calls' first-round blocks. Each call has 2 slow blocks of 6, so both medians are the
    undisturbed times (timed one call after the other, the first call would have had 4 slow blocks of 6). Within
    a round each call runs on its own: its warm-up, then its blocks."""
    invocations = []

    def block_of(name: str, undisturbed: float):
        def block(number: int) -> float:
            invocations.append((name, number))
            timed_so_far = sum(n > 1 for _, n in invocations)  # timed blocks run 4 and 2 calls, the others 1
            return undisturbed * (10 if number > 1 and timed_so_far <= 4 else 1)
        return block

    medians = interleaved_medians([block_of('a', 0.5), block_of('b', 0.8)], warmup=1, repeats=6, min_repeat_ms=1.6)
    assert medians == [0.5, 0.8]
    first = [('a', 1), ('a', 1), ('a', 4), ('a', 4), ('b', 1), ('b', 1), ('b', 2), ('b', 2)]  # warm-up, sizing
    assert invocations == first + [('a', 1), ('a', 4), ('a', 4), ('b', 1), ('b', 2), ('b', 2)] * 2


def test_whole_networks_are_timed_with_three_times_the_repeats_in_three_times_the_rounds():
    """``for_whole_networks`` keeps the options and the cache but triples repeats and rounds: two calls are each run
    once to size the block, then 27 timed blocks, in 9 alternating rounds of 3 (no warm-up)."""
    order = []

    class Probe(nn.Module):
        def __init__(self, name: str):
            super().__init__()
            self.name = name

        def forward(self, x):
            order.append(self.name)
            return x

    # every call lasts longer than min_repeat_ms, so a block is one call
    predictor = MeasuredPredictor('cpu', repeats=9, warmup=0, min_repeat_ms=1e-6, cache_dir=False)
    whole = predictor.for_whole_networks()
    assert (whole.repeats, whole.rounds, predictor.repeats, predictor.rounds) == (27, 9, 9, 3)
    assert (whole.threads, whole.cache_file, whole.device) == (predictor.threads, None, 'cpu')
    whole.predict([ModuleCall(Probe('a'), (torch.ones(1),), {}), ModuleCall(Probe('b'), (torch.ones(1),), {})])
    assert order == ['a'] * 4 + ['b'] * 4 + (['a'] * 3 + ['b'] * 3) * 8
