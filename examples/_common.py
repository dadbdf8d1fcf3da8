"""What the examples share: scikit-learn's digits as tensors and loaders, and NNI 2.x's example loss and metric.

Imported by the scripts next to it (``python examples/<script>.py`` puts this folder on the path) and by the tests.
"""

from __future__ import annotations

import torch
from torch import nn
from nni.nas.evaluator.pytorch import DataLoader
from sklearn.datasets import load_digits

__all__ = ['digits', 'digits_split', 'digits_loaders', 'LabelSmoothingLoss', 'accuracy']


def digits(limit: int | None = None, seed: int | None = 0) -> torch.utils.data.TensorDataset:
    """scikit-learn's 1797 digits as (1x8x8 image in [0, 1], label) pairs, shuffled once by ``seed`` (``None``:
    in the file's order), the first ``limit`` of them."""
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16, torch.tensor(y)
    if seed is not None:
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        x, y = x[order], y[order]
    return torch.utils.data.TensorDataset(x[:limit], y[:limit])


def digits_split(n_train: int, seed: int = 0) -> tuple[torch.utils.data.Dataset, torch.utils.data.Dataset]:
    """The digits split at random into ``n_train`` and the rest (``torch.utils.data.random_split``)."""
    data = digits(seed=None)
    return tuple(torch.utils.data.random_split(data, [n_train, len(data) - n_train],
                                               generator=torch.Generator().manual_seed(seed)))


def digits_loaders(batch_size: int, n_train: int = 1200, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """NNI's data loaders over :func:`digits_split`: the training part shuffled, the rest for validation."""
    train, val = digits_split(n_train, seed)
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=batch_size)


class LabelSmoothingLoss(nn.Module):
    """Cross-entropy against labels smoothed by ``smoothing`` (the loss of NNI 2.x's ProxylessNAS example)."""

    def __init__(self, smoothing: float = 0.1):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(logits, dim=-1)
        soft = torch.full_like(log_p, self.smoothing / (logits.shape[-1] - 1))
        soft.scatter_(-1, target[:, None], 1 - self.smoothing)
        return -(soft * log_p).sum(-1).mean()


def accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)) -> dict[str, float]:
    """Top-k accuracies as NNI 2.x's example computed them: ``{'acc1': ..., 'acc5': ...}``."""
    top = output.topk(max(topk), dim=1).indices
    return {f'acc{k}': (top[:, :k] == target[:, None]).any(1).float().mean().item() for k in topk}
