"""REINFORCE: the official ProxylessNAS's second way to train the architecture (policy gradient).

Per architecture step: draw ``samples`` whole architectures ``m`` from the current distribution, evaluate each
on one validation batch (the same batch for all, so rewards differ only by architecture), and form

    reward    R(m) = ACC(m) * (LAT(m) / T) ** w          (ACC(m) alone without a latency table)
    baseline  b   <- b + decay * (mean R - b)            (the first update sets b = mean R)
    loss          = mean over m of  -(R(m) - b) * sum over labels used by m of log p_l(m_l)

as the official code does (it writes ``ACC * (T / LAT) ** 0.1``: ``w = -0.1``, ``T = ref_latency``,
``decay = 0.99``). The baseline is updated before it is used. The loss goes through the same Adam as the
gradient mode. ``LAT(m)`` comes from the latency table, or from measuring the subnet (cached per architecture).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from .arch import ArchParameters, Selection

__all__ = ['ReinforceUpdate', 'MeasuredSubnetLatency', 'classification_accuracy', 'check_reinforce_options']

_OPTIONS = {'samples', 'latency_weight', 'baseline_decay', 'metric', 'latency'}


def classification_accuracy(output: torch.Tensor, batch: Any) -> torch.Tensor:
    """Top-1 accuracy of ``output`` on an ``(input, target)`` batch: the default reward metric.

    A scalar tensor on the output's device (reading it as a float would wait for the device).
    """
    return (output.argmax(dim=-1) == batch[1]).float().mean()


def check_reinforce_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate ``Proxyless(reinforce_options=...)``; returns them unchanged."""
    if not isinstance(options, dict) or set(options) - _OPTIONS:
        raise ValueError(f'reinforce_options must be a dict with keys among {sorted(_OPTIONS)}, got {options!r}.')
    if options.get('latency', 'table') not in ('table', 'measured'):
        raise ValueError(f"reinforce_options['latency'] must be 'table' or 'measured', got {options['latency']!r}.")
    if 'metric' in options and not callable(options['metric']):
        raise ValueError(f"reinforce_options['metric'] must be a callable (output, batch) -> float, "
                         f"got {options['metric']!r}.")
    if not isinstance(options.get('samples', 10), int) or options.get('samples', 10) < 1:
        raise ValueError(f"reinforce_options['samples'] must be an integer >= 1, got {options['samples']!r}.")
    for name, low, high in (('latency_weight', -math.inf, math.inf), ('baseline_decay', 0.0, 1.0)):
        value = options.get(name, 0.5)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
                or math.isnan(value):
            raise ValueError(f"reinforce_options[{name!r}] must be a number in [{low}, {high}], got {value!r}.")
    return options


class MeasuredSubnetLatency:
    """``LAT(m)`` measured on this machine: the frozen subnet timed at ``dummy_input``, cached per architecture.

    Args:
        supernet: the search's supernet (each architecture is frozen from it).
        dummy_input: the input shape (or tensor) to time at.
        device: ``'cpu'`` or ``'cuda'``: where to time (the search uses ``'cuda'`` when
            ``applied_hardware='cuda'``).
        **predictor_options: passed to :class:`~nni_proxyless.latency.measure.MeasuredPredictor`.
    """

    def __init__(self, supernet: nn.Module, dummy_input: Any, device: str = 'cpu', **predictor_options: Any):
        from .latency.measure import MeasuredPredictor
        self.supernet, self.cache = supernet, {}
        self.input = dummy_input if isinstance(dummy_input, torch.Tensor) else torch.randn(tuple(dummy_input))
        self.input = self.input.cpu()  # the predictor takes CPU modules and inputs (and copies them to 'cuda')
        self.predictor = MeasuredPredictor(device, cache_dir=False, **predictor_options)

    def __call__(self, sample: dict[str, Any]) -> float:
        from .latency.protocol import ModuleCall
        key = repr(sorted(sample.items()))
        if key not in self.cache:
            subnet = self.supernet.freeze(sample).cpu()  # a copy: the supernet may be on a GPU while it trains
            self.cache[key] = self.predictor.predict([ModuleCall(subnet, (self.input,), {})])[0]
        return self.cache[key]


class ReinforceUpdate(nn.Module):
    """The REINFORCE architecture loss, with its moving baseline (kept in checkpoints).

    Args:
        samples: architectures per update (official: 10).
        latency_weight: ``w`` in ``(LAT / T) ** w`` (official: -0.1; negative rewards speed).
        ref_latency: ``T``, in the latency unit.
        baseline_decay: how far the baseline moves towards the batch's mean reward (official: 0.99).
        metric: ``(output, batch) -> float``, the accuracy-like reward (default: top-1 accuracy); it may return a
            scalar tensor instead, which spares a wait for the GPU per sampled architecture.
        latency: ``sample -> latency`` of an architecture, or ``None`` for an accuracy-only reward.
    """

    def __init__(self, *, samples: int = 10, latency_weight: float = -0.1, ref_latency: float = 65.0,
                 baseline_decay: float = 0.99, metric: Callable[[Any, Any], float] = classification_accuracy,
                 latency: Callable[[dict[str, Any]], float] | None = None):
        super().__init__()
        self.samples, self.latency_weight, self.ref_latency = samples, latency_weight, ref_latency
        self.baseline_decay, self.metric, self.latency = baseline_decay, metric, latency
        self.register_buffer('baseline', torch.tensor(float('nan'), dtype=torch.float64))

    def reward(self, accuracy: float | torch.Tensor, sample: dict[str, Any]) -> float | torch.Tensor:
        """``ACC * (LAT / T) ** w``, or ``ACC`` without a latency source (a float or a scalar tensor)."""
        if self.latency is None:
            return accuracy
        return accuracy * (self.latency(sample) / self.ref_latency) ** self.latency_weight

    def loss(self, arch: ArchParameters, rewarded: list[tuple[dict[str, Selection], dict[str, Any], Any]]
             ) -> torch.Tensor:
        """The policy-gradient loss of sampled ``(paths, sample, reward)`` triples; updates the baseline.

        Rewards may be floats or scalar tensors; everything stays on the baseline's device (no wait for it).
        """
        device = self.baseline.device
        rewards = torch.stack([torch.as_tensor(reward, device=device).to(torch.float64) for _, _, reward in rewarded])
        with torch.no_grad():
            mean = rewards.mean()
            moved = self.baseline + self.baseline_decay * (mean - self.baseline)
            self.baseline.copy_(torch.where(torch.isnan(self.baseline), mean, moved))
        terms = []
        for (selections, sample, _), advantage in zip(rewarded, rewards - self.baseline):
            log_p = sum(arch.log_prob(label, selection) for label, selection in selections.items()
                        if arch.is_active(label, sample))
            terms.append(-advantage.float() * log_p)
        return torch.stack(terms).mean()
