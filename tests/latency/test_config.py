"""Latency arguments checked in the constructor: table files read at once, units named as the table's."""

from __future__ import annotations

import logging

import pytest
import torch

from nni_proxyless import Proxyless
from nni_proxyless.callbacks import DummyInputCheck
from nni_proxyless.latency.table import TableError


@pytest.mark.parametrize('content, message', [
    ('{"version": 2, "labels": {', 'is not JSON|Cannot read latency table'),
    ('[1, 2, 3]', 'is not an nni-proxyless latency table'),
])
def test_corrupt_table_file_fails_in_the_constructor(tmp_path, content, message):
    """A corrupt latency table file fails when Proxyless is built, naming the file and how to rebuild it."""
    path = tmp_path / 'table.json'
    path.write_text(content)
    with pytest.raises(TableError, match=f'applied_hardware=.*table.json.*({message}).*Build the table again'):
        Proxyless(applied_hardware=str(path))


@pytest.mark.parametrize('hardware, unit', [('flops', 'MFLOPs'), (None, 'milliseconds')])
def test_messages_name_the_table_unit(hardware, unit):
    """ref_latency and latency_target errors name MFLOPs with 'flops', milliseconds otherwise."""
    with pytest.raises(ValueError, match=f'ref_latency must be a positive number of {unit}, got -1'):
        Proxyless(applied_hardware=hardware, ref_latency=-1)
    if hardware is not None:
        with pytest.raises(ValueError, match=f'latency_target must be a positive number of {unit} or None'):
            Proxyless(applied_hardware=hardware, latency_target=0)


@pytest.mark.parametrize('ref', [0, 0.5, 1])
def test_mul_log_states_its_rule_for_any_reference_up_to_one(ref):
    """mul#log with ref_latency <= 1 (0 included) gives its own rule (> 1), in the table's unit."""
    with pytest.raises(ValueError, match=f'needs ref_latency > 1; with ref_latency={ref} MFLOPs'):
        Proxyless(applied_hardware='flops', grad_reg_loss_type='mul#log', ref_latency=ref)


class _Trainer:
    is_global_zero = True


@pytest.mark.parametrize('shape, warns', [((64, 3, 32, 32), True), ((7, 3, 224, 224), False)])
def test_dummy_input_that_does_not_match_the_data_is_named(caplog, shape, warns):
    """The first batch's input shape (past the batch size) is compared with dummy_input; a mismatch warns once,
    naming both shapes and the dummy_input that fits."""
    check = DummyInputCheck((1, 3, 224, 224))
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        for _ in range(2):
            check.on_train_batch_start(_Trainer(), None, (torch.zeros(shape), torch.zeros(shape[0])), 0)
    expected = ['dummy_input=(1, 3, 224, 224) does not match the first training batch\'s input, of shape '
                f'{shape}: the latency table is priced at dummy_input, not at the size of the data. Pass '
                f'dummy_input=(1, {shape[1]}, {shape[2]}, {shape[3]}) (the batch size may differ).'] if warns else []
    assert [r.getMessage() for r in caplog.records] == expected


def test_search_warns_when_dummy_input_is_not_the_data_shape(tmp_path, caplog):
    """A search priced at (1, 1, 16, 16) on 8x8 digits warns once, naming both shapes (the search goes on)."""
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace

    from conftest import digits_evaluator, run_search

    class Pooled(ModelSpace):
        def __init__(self):
            super().__init__()
            self.conv = LayerChoice({'k3': torch.nn.Conv2d(1, 4, 3, padding=1),
                                     'k5': torch.nn.Conv2d(1, 4, 5, padding=2)}, label='conv')
            self.head = torch.nn.Linear(4, 10)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).mean((2, 3)))

    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 16, 16), ref_latency=0.01)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(Pooled(), strategy, digits_evaluator(epochs=1), tmp_path)
    warned = [r.getMessage() for r in caplog.records if 'does not match the first training batch' in r.getMessage()]
    assert len(warned) == 1 and '(64, 1, 8, 8)' in warned[0] and 'dummy_input=(1, 1, 8, 8)' in warned[0]
