"""A planted-optimum space on digits: in every choice exactly one candidate carries the signal."""

from __future__ import annotations

import torch
from torch import nn

from nni.nas.nn.pytorch import LayerChoice, ModelSpace


class Zero(nn.Module):
    """Adds nothing (the residual passes the input through unchanged)."""

    def forward(self, x):
        return torch.zeros_like(x)


class Noise(nn.Module):
    """Adds noise unrelated to the input."""

    def forward(self, x):
        return torch.randn_like(x)


class Cancel(nn.Module):
    """Cancels the residual stream (``x + (-x) = 0``): the signal is lost."""

    def forward(self, x):
        return -x


class PlantedSpace(ModelSpace):
    """Residual blocks ``x + choice(x)``; the learnable candidate sits at a position drawn from ``plant_seed``.

    The other candidates carry no signal: by default one adds nothing (``Zero``) and one adds noise; with
    ``destructive=True`` the first cancels the stream instead, so that accuracy alone tells them apart.
    """

    def __init__(self, plant_seed: int, n_choices: int = 3, width: int = 32, destructive: bool = False):
        super().__init__()
        gen = torch.Generator().manual_seed(plant_seed)
        self.planted = [int(torch.randint(3, (1,), generator=gen)) for _ in range(n_choices)]
        self.stem = nn.Linear(64, width)
        self.choices = nn.ModuleList()
        for i, position in enumerate(self.planted):
            candidates: list[nn.Module] = [Cancel() if destructive else Zero(), Noise()]
            candidates.insert(position, nn.Sequential(nn.Linear(width, width), nn.ReLU()))
            self.choices.append(LayerChoice(candidates, label=f'c{i}'))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x.flatten(1)))
        for choice in self.choices:
            x = x + choice(x)
        return self.head(x)

    def planted_architecture(self) -> dict[str, int]:
        """The one architecture in which every choice takes its signal-carrying candidate."""
        return {f'c{i}': position for i, position in enumerate(self.planted)}


class Degrade(nn.Module):
    """Passes on an attenuated copy of its input plus noise: the signal survives, weakened."""

    def __init__(self, gain: float, noise: float):
        super().__init__()
        self.gain, self.noise = gain, noise

    def forward(self, x):
        return self.gain * x + self.noise * x.detach().std() * torch.randn_like(x)


class Residual(nn.Module):
    """``x + relu(W x)``: keeps the signal and can learn more."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x):
        return x + torch.relu(self.linear(x))


class _ChoiceChain(ModelSpace):
    """``stem -> choice_0 -> ... -> head`` on flattened 8x8 digits; ``candidates(i)`` gives choice ``i``'s."""

    def __init__(self, n_choices: int, width: int, candidates):
        super().__init__()
        self.stem = nn.Linear(64, width)
        self.choices = nn.ModuleList(LayerChoice(candidates(i), label=f'c{i}') for i in range(n_choices))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x.flatten(1)))
        for choice in self.choices:
            x = choice(x)
        return self.head(x)


class DegradingSpace(_ChoiceChain):
    """Blocks ``x -> choice(x)`` of four candidates: one learnable residual block at a position drawn from
    ``plant_seed``, and three that degrade the stream, each a (gain, noise relative to the stream's spread):
    (0.9, 0.1), (0.7, 0.2), (0.5, 0.3). No wrong candidate erases the signal, so every architecture learns
    something and the search must tell degrees apart.
    """

    DEGRADERS = ((0.9, 0.1), (0.7, 0.2), (0.5, 0.3))

    def __init__(self, plant_seed: int, n_choices: int = 3, width: int = 32,
                 degraders: tuple[tuple[float, float], ...] = DEGRADERS):
        gen = torch.Generator().manual_seed(plant_seed)
        planted = [int(torch.randint(len(degraders) + 1, (1,), generator=gen)) for _ in range(n_choices)]

        def candidates(i: int) -> list[nn.Module]:
            wrong: list[nn.Module] = [Degrade(gain, noise) for gain, noise in degraders]
            return wrong[:planted[i]] + [Residual(width)] + wrong[planted[i]:]
        super().__init__(n_choices, width, candidates)
        self.planted = planted

    def planted_architecture(self) -> dict[str, int]:
        """The one architecture in which every choice takes its learnable candidate."""
        return {f'c{i}': position for i, position in enumerate(self.planted)}


class EquivalentSpace(_ChoiceChain):
    """Blocks ``x -> choice(x)`` whose candidates are all the same learnable residual block (each with its own
    initial weights): no candidate is better than another, so whatever the search prefers comes from noise."""

    def __init__(self, n_choices: int = 3, candidates: int = 4, width: int = 32):
        super().__init__(n_choices, width, lambda i: [Residual(width) for _ in range(candidates)])
