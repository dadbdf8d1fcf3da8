"""NNI's InputChoice exported: the chosen inputs reduced as NNI's ChosenInputs does, in modules TorchScript compiles."""

from __future__ import annotations

import pytest
import torch
from nni.nas.nn.pytorch.choice import ChosenInputs

from nni_proxyless.ops.input import ChosenList, ChosenReduced


@pytest.mark.parametrize('reduction', ['sum', 'mean', 'concat', 'none'])
@pytest.mark.parametrize('chosen', [[2], [0, 2]])
def test_frozen_inputs_equal_nni_chosen_inputs_and_script(reduction, chosen):
    """ChosenReduced (ChosenList for 'none') and its TorchScript give NNI's ChosenInputs outputs."""
    inputs = [torch.randn(2, 3) for _ in range(3)]
    frozen = ChosenList(chosen) if reduction == 'none' else ChosenReduced(chosen, reduction)
    expected = ChosenInputs(chosen, reduction)(inputs)
    for module in (frozen, torch.jit.script(frozen)):
        output = module(inputs)
        if reduction == 'none':
            assert len(output) == len(expected) and all(torch.equal(a, b) for a, b in zip(output, expected))
        else:
            torch.testing.assert_close(output, expected)


def test_reduction_is_checked():
    """An unknown reduction is refused with the value named and the reductions listed."""
    with pytest.raises(ValueError, match="reduction must be 'sum', 'mean' or 'concat' .*, got 'max'"):
        ChosenReduced([0], 'max')
