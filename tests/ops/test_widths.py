"""The first batch's width check: labels whose widened output differs are kept exact, whatever the output holds
(a tensor, a dict, a tuple, a number)."""

from __future__ import annotations

import nni
import pytest
import torch

from nni.nas.nn.pytorch import ModelSpace, MutableLinear
from nni_proxyless.arch import ArchParameters
from nni_proxyless.ops import check_widening_on_first_batch
from nni_proxyless.supernet import build_supernet

_CONTAINERS = {'tensor': lambda y: y, 'dict': lambda y: {'logits': y, 'note': 'kept'},
               'tuple': lambda y: (torch.zeros(1), {'logits': y}), 'number': lambda y: (float(y.detach().square().sum()),)}


class Branches(ModelSpace):
    """Two ``Linear(3, w)`` branches into a ``Linear(., 3)`` head; ``concatenated``: the branches are joined along
    the features (a narrow width's features are then not the prefix of the wide tensor), else summed."""

    def __init__(self, concatenated: bool, container: str):
        super().__init__()
        width = nni.choice('w', [2, 4])
        self.a, self.b = MutableLinear(3, width), MutableLinear(3, width)
        self.head = MutableLinear(2 * width if concatenated else width, 3)
        self.concatenated, self.container = concatenated, container

    def forward(self, x):
        a, b = self.a(x), self.b(x)
        y = torch.cat([a, b], dim=-1) if self.concatenated else a + b
        return _CONTAINERS[self.container](self.head(y))


@pytest.mark.parametrize('container', list(_CONTAINERS))
@pytest.mark.parametrize('concatenated', [True, False])
def test_concatenated_width_is_kept_exact_in_any_output(container, concatenated):
    """The label is kept exact exactly when the space concatenates it, also when the output is a dict, a tuple
    (compared key by key, element by element) or a number."""
    torch.manual_seed(0)
    arch = ArchParameters(seed=0)
    net = build_supernet(Branches(concatenated, container), arch)
    check_widening_on_first_batch(net, arch.routing)
    arch.routing.set(arch.selections_for({'w': 2}))
    net(torch.randn(5, 3))
    assert arch.routing.exact_widths == ({'w'} if concatenated else set())
