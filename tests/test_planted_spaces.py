"""Planted optima in NNI 3.0's language: widths in layer arguments, and a cell whose (input, operation) pairs
carry the signal at one place per node. 10 seeds x 10 epochs on digits; the export must be the planted one."""

from __future__ import annotations

import nni
import torch
from torch import nn

from nni.nas.nn.pytorch import Cell, ModelSpace, MutableLinear

from conftest import planted_found

THIRDS = [slice(0, 24), slice(24, 48), slice(48, 64)]  # rows 0-2, 3-5 and 6-7 of the 8x8 digits


class PlantedWidths(ModelSpace):
    """Three branches, each on a third of the image: ``Linear(pixels, w) -> ReLU -> Linear(w, 10)``, logits summed.

    Each branch's width ``w_i`` is a choice of 1, 2 or 24 in an order drawn from ``plant_seed``: only the wide
    branch carries its third of the image; widths 1 and 2 cannot separate ten classes.
    """

    def __init__(self, plant_seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(plant_seed)
        self.orders = [[(1, 2, 24)[i] for i in torch.randperm(3, generator=gen).tolist()] for _ in THIRDS]
        self.first, self.second = nn.ModuleList(), nn.ModuleList()
        for i, (rows, order) in enumerate(zip(THIRDS, self.orders)):
            width = nni.choice(f'w{i}', order)
            self.first.append(MutableLinear(rows.stop - rows.start, width))
            self.second.append(MutableLinear(width, 10))

    def forward(self, x):
        x = x.flatten(1)
        return sum(second(torch.relu(first(x[:, rows])))
                   for rows, first, second in zip(THIRDS, self.first, self.second))

    def planted_architecture(self) -> dict[str, int]:
        return {f'w{i}': 24 for i in range(len(THIRDS))}


def test_planted_widths_found_in_nine_of_ten_seeds(tmp_path):
    """Value choices: the exported widths are the planted (signal-carrying) ones in at least 9 of 10 seeds."""
    solved = planted_found(lambda seed: PlantedWidths(plant_seed=200 + seed), 10, tmp_path)
    assert solved >= 9, f'planted widths exported in {solved}/10 seeds'


class _Keep(nn.Module):
    """Learns from one half of the signal features (the half its node is planted on)."""

    def __init__(self, half: int):
        super().__init__()
        self.half, self.linear = half, nn.Linear(16, 32)

    def forward(self, x):
        return torch.relu(self.linear(x[:, 16 * self.half:16 * (self.half + 1)]))


class _Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


class _Noise(nn.Module):
    def forward(self, x):
        return torch.randn_like(x)


class PlantedCell(ModelSpace):
    """A cell of two nodes over two predecessors, the image's features and noise (their order drawn from
    ``plant_seed``); operations ``keep``, ``zero`` and ``noise`` in a drawn order.

    ``keep`` on the feature predecessor learns from the top half of the image at node 2 and the bottom half at
    node 3; on any other input (noise, or the other node) it gives zeros. So each node has exactly one
    (input, operation) pair carrying its half of the signal, and both halves are needed to classify well.
    """

    def __init__(self, plant_seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(plant_seed)
        self.signal = int(torch.randint(2, (1,), generator=gen))
        self.names = [('keep', 'zero', 'noise')[i] for i in torch.randperm(3, generator=gen).tolist()]
        self.top, self.bottom = nn.Linear(32, 16), nn.Linear(32, 16)

        def operation(name):
            def build(node, op, inp):
                if name == 'keep':
                    return _Keep(node - 2) if inp == self.signal else _Zero()
                return _Zero() if name == 'zero' else _Noise()
            return build

        self.cell = Cell({name: operation(name) for name in self.names}, num_nodes=2, num_predecessors=2,
                         label='cell')
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = x.flatten(1)
        features = torch.relu(torch.cat([self.top(x[:, :32]), self.bottom(x[:, 32:])], 1))
        predecessors = [features, torch.randn_like(features)]
        if self.signal == 1:
            predecessors.reverse()
        return self.head(self.cell(predecessors))

    def planted_architecture(self) -> dict:
        return {'cell/input_2_0': [self.signal], 'cell/op_2_0': 'keep',
                'cell/input_3_0': [self.signal], 'cell/op_3_0': 'keep'}


def test_planted_cell_found_in_nine_of_ten_seeds(tmp_path):
    """Cells: every node's exported (input, operation) pair is the planted one in at least 9 of 10 seeds."""
    solved = planted_found(lambda seed: PlantedCell(plant_seed=300 + seed), 10, tmp_path)
    assert solved >= 9, f'planted cell exported in {solved}/10 seeds'
