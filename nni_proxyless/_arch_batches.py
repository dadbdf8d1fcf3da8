"""The batches architecture steps train on: an endless, resumable, separately seeded pass over a loader."""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import torch

__all__ = ['ArchBatches']


class ArchBatches:
    """Endless batches from a data loader made on first use (re-iterated when exhausted).

    Its random draws (a shuffling sampler's seed, workers' seeds) come from its own seed and pass number, not
    from the global generator; with the count of batches it gave, a resumed search continues with the batches
    an uninterrupted one would have used, and the global random stream is the same either way.
    """

    def __init__(self, make_loader: Callable[[], Any], seed: Callable[[], int]):
        self._make_loader = make_loader
        self._seed = seed
        self._loader = None
        self._iterator: Iterator | None = None
        self._passes = 0
        self.consumed = 0
        self._skip = 0

    def resume_at(self, consumed: int) -> None:
        """Continue as if ``consumed`` batches had been drawn already."""
        self.consumed, self._skip, self._iterator = consumed, consumed, None

    def next(self) -> Any:
        if self._loader is None:
            self._loader = self._make_loader()
            if self._loader is None:
                raise ValueError('Proxyless needs validation data to train the architecture: give the evaluator '
                                 'val_dataloaders (or a datamodule with val_dataloader).')
        if self._iterator is None and self._skip:
            per_pass = len(self._loader) if hasattr(self._loader, '__len__') else None
            self._passes = self._skip // per_pass if per_pass else 0
            for _ in range(self._skip % per_pass if per_pass else self._skip):
                self._draw()
            self._skip = 0
        self.consumed += 1
        return self._draw()

    def _draw(self) -> Any:
        for _ in range(2):
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only (the loader draws from it): torch.manual_seed would also reseed the
                # CUDA generators, which fork_rng(devices=[]) does not restore (dropout masks would repeat)
                torch.default_generator.manual_seed((self._seed() * 1_000_003 + self._passes) % (2 ** 63))
                if self._iterator is not None:
                    with contextlib.suppress(StopIteration):
                        return next(self._iterator)
                self._iterator = iter(self._loader)
                self._passes += 1
        raise ValueError('The validation data loader is empty; the architecture step needs at least one batch.')
