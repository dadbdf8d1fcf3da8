"""The global random states in checkpoints, so that a resumed search draws what the uninterrupted one would."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning import Callback

__all__ = ['RandomStateKeeper']


class RandomStateKeeper(Callback):
    """Saves the global random states (torch, Python, NumPy) in checkpoints and restores them on resume.

    Data shuffling and random candidates (dropout, noise) draw from these states; restoring them makes a
    resumed search continue exactly as the uninterrupted one would have (path sampling has its own seeds).
    On a GPU, dropout draws from the CUDA generator of the process's device: its state is kept too (when CUDA
    is in use) and restored into the device of the resumed process (all GPUs' states would make every DDP
    process initialise every GPU). Stored as tensors and plain lists, so checkpoints load with
    ``weights_only=True``.
    """

    def state_dict(self) -> dict[str, Any]:
        name, keys, position, has_gauss, cached = np.random.get_state()
        state = {'torch': torch.get_rng_state(), 'python': list(random.getstate()[1]),
                 'python_version': random.getstate()[0], 'python_gauss': random.getstate()[2],
                 'numpy': [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position),
                           int(has_gauss), float(cached)]}
        if torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict['torch'])
        if state_dict.get('cuda') is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(state_dict['cuda'])
        random.setstate((state_dict['python_version'], tuple(state_dict['python']), state_dict['python_gauss']))
        name, keys, position, has_gauss, cached = state_dict['numpy']
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
