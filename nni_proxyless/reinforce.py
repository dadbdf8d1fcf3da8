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

from typing import Any, Callable

import torch
from torch import nn

from . import _checks
from .arch import ArchParameters, Selection

__all__ = ['ReinforceUpdate', 'classification_accuracy', 'batch_input', 'check_reinforce_options']

_OPTIONS = {'samples', 'latency_weight', 'baseline_decay', 'metric', 'input_of', 'latency'}


def classification_accuracy(output: torch.Tensor, batch: Any) -> torch.Tensor:
    """Top-1 accuracy of ``output`` on an ``(input, target)`` batch: the default reward metric.

    A scalar tensor on the output's device (reading it as a float would wait for the device).

    Raises:
        TypeError: the batch is not an ``(input, target)`` pair (e.g. a dict), naming the option to pass.
    """
    return (output.argmax(dim=-1) == _part(batch, 1, 'target', 'metric')).float().mean()


def batch_input(batch: Any) -> Any:
    """The model's input in an ``(input, target)`` batch: the default ``input_of``.

    Raises:
        TypeError: the batch is not an ``(input, target)`` pair (e.g. a dict), naming the option to pass.
    """
    return _part(batch, 0, 'input', 'input_of')


def _part(batch: Any, index: int, what: str, option: str) -> Any:
    if isinstance(batch, (list, tuple)) and len(batch) > index:
        return batch[index]
    raise TypeError(f"arch_update='reinforce' reads the {what} of each validation batch as batch[{index}] of an "
                    f"(input, target) pair, but the batch is a {type(batch).__name__}. Say how to read your "
                    "batches: reinforce_options={'input_of': lambda batch: batch['image'], 'metric': lambda output, "
                    "batch: (output.argmax(-1) == batch['label']).float().mean()} (with your keys); "
                    f'{option!r} is the one missing.')


def check_reinforce_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate ``Proxyless(reinforce_options=...)``; returns them with plain ``int`` / ``float`` numbers."""
    options = dict(_checks.mapping('reinforce_options', options, keys=_OPTIONS))
    _checks.one_of("reinforce_options['latency']", options.get('latency', 'table'), ('table', 'measured'))
    if 'metric' in options:
        _checks.function("reinforce_options['metric']", options['metric'], 'metric(output, batch) -> float',
                          ValueError)
    if 'input_of' in options:
        _checks.function("reinforce_options['input_of']", options['input_of'], 'input_of(batch) -> model input',
                          ValueError)
    if 'samples' in options:
        options['samples'] = _checks.integer("reinforce_options['samples']", options['samples'], low=1)
    if 'latency_weight' in options:
        options['latency_weight'] = _checks.number("reinforce_options['latency_weight']", options['latency_weight'])
    if 'baseline_decay' in options:
        options['baseline_decay'] = _checks.number("reinforce_options['baseline_decay']", options['baseline_decay'],
                                                   low=0, high=1)
    return options


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
        input_of: ``batch -> input`` the model is run on (default: ``batch[0]`` of ``(input, target)`` batches);
            give it, with ``metric``, for other batches (e.g. dicts).
    """

    def __init__(self, *, samples: int = 10, latency_weight: float = -0.1, ref_latency: float = 65.0,
                 baseline_decay: float = 0.99, metric: Callable[[Any, Any], float] = classification_accuracy,
                 latency: Callable[[dict[str, Any]], float] | None = None,
                 input_of: Callable[[Any], Any] = batch_input):
        super().__init__()
        self.samples, self.latency_weight, self.ref_latency = samples, latency_weight, ref_latency
        self.baseline_decay, self.metric, self.latency, self.input_of = baseline_decay, metric, latency, input_of
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
