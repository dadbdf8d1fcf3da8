"""What the documentation shows comes from a run: error messages quoted in docs/reliability.md, outputs shown in
docs/getting-started.md."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import torch

from nni_proxyless import Proxyless

DOCS = Path(__file__).resolve().parents[1] / 'docs'
_ROW = re.compile(r'^\| `(\w+)=([^`]+)` \| `([^`]+)` \|$')


def _argument_rows() -> list[tuple[str, str, str]]:
    """The rows of reliability.md's tables of the form | `name=value` | `message` |."""
    return [m.groups() for line in (DOCS / 'reliability.md').read_text().splitlines() if (m := _ROW.match(line))]


def _raised(call) -> str:
    with pytest.raises(Exception) as error:
        call()
    return str(error.value)


@pytest.mark.parametrize('name, value, message', _argument_rows(), ids=lambda v: str(v)[:40])
def test_quoted_argument_errors_are_the_real_ones(name, value, message):
    """Each `Proxyless(name=value)` row quotes exactly the message that Proxyless raises."""
    if name == 'applied_hardware' and value == "'cuda'" and torch.cuda.is_available():
        pytest.skip('a CUDA device is present')
    kind, _, text = message.partition(': ') if re.match(r'^[A-Z]\w+Error: ', message) else ('', '', message)
    raised = _raised(lambda: Proxyless(**{name: eval(value)}))
    assert raised == text


def test_quoted_model_space_and_mul_log_errors_are_the_real_ones():
    """'nothing to search' and mul#log with ref_latency=0.5 quote the messages raised."""
    from nni.nas.nn.pytorch import ModelSpace

    from conftest import digits_evaluator, run_search

    class Plain(ModelSpace):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(x.flatten(1))

    text = (DOCS / 'reliability.md').read_text()
    assert f'`{_raised(lambda: run_search(Plain(), Proxyless(), digits_evaluator(), Path("/tmp")))}`' in text
    mul_log = _raised(lambda: Proxyless(grad_reg_loss_type='mul#log', ref_latency=0.5))
    assert f'`{mul_log}`' in text


def test_quoted_search_errors_are_the_real_ones(tmp_path, monkeypatch, caplog):
    """The corrupt table, warm-up (a warning) and REINFORCE dict-batch rows quote the messages given."""
    from conftest import ConvSpace, digits_evaluator, run_search
    from nni_proxyless.reinforce import batch_input

    text = (DOCS / 'reliability.md').read_text()
    monkeypatch.chdir(tmp_path)
    Path('table.json').write_text('{"version": 2, "labels": {')
    assert f"`TableError: {_raised(lambda: Proxyless(applied_hardware='table.json'))}`" in text
    assert f'`TypeError: {_raised(lambda: batch_input({"image": 0}))}`' in text
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        run_search(ConvSpace(), Proxyless(warmup_epochs=2), digits_evaluator(epochs=2), tmp_path)
    [warmup] = [r.getMessage() for r in caplog.records if 'leaves no architecture step' in r.getMessage()]
    assert f'`{warmup}`' in text


def _python_block_after(text: str, marker: str) -> str:
    start = text.index('```python\n', text.index(marker)) + len('```python\n')
    return text[start:text.index('```', start)]


def test_getting_started_search_prints_what_the_page_shows(tmp_path):
    """The page's smallest search, then its export loop, print the line the page shows ('...': more digits)."""
    import os
    import subprocess
    import sys

    text = (DOCS / 'getting-started.md').read_text()
    search = _python_block_after(text, 'The smallest complete search looks like this:')
    export = _python_block_after(text, '## Reading the export')
    shown = [line[2:] for line in export.splitlines() if line.startswith('# ')]
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run([sys.executable, '-c', search + export], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [line for line in result.stdout.splitlines() if line.startswith('{')]
    assert shown and len(printed) >= len(shown)
    for line, expected in zip(printed, shown):
        assert re.fullmatch(re.escape(expected).replace(r'\.\.\.', r'\d*'), line), (line, expected)


class _Experiment:
    """A finished search as docs/deploy.md's snippets use it: ``export_top_models`` formats its one export as NNI's
    ``NasExperiment.export_top_models`` does (``dict``: the sample, ``instance``: the executable model)."""

    def __init__(self, exported):
        self.exported = exported

    def export_top_models(self, top_k: int, formatter: str) -> list:
        return [self.exported.sample if formatter == 'dict' else self.exported.executable_model()][:top_k]


_DEPLOYED = ['rebuilt(x)', 'loaded(x)', 'loaded(x)', 'y', 'torch.from_numpy(logits)']
"""What each route's snippet in docs/deploy.md computes on the device, after the first snippet (the exports)."""


def test_deploy_snippets_run_and_give_the_instance_outputs(tmp_path, monkeypatch):
    """docs/deploy.md's snippets run as written, one after the other, on a small space's export (no search), and
    each route's model on the device gives the instance's outputs (ONNX's without onnxruntime: not run)."""
    import importlib.util

    from deploy_tools import DeploySpace, deploy_exports

    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r'```python\n(.*?)```', (DOCS / 'deploy.md').read_text(), re.DOTALL)
    assert len(blocks) == 1 + len(_DEPLOYED)
    namespace = {'exp': _Experiment(deploy_exports()), 'MySpace': DeploySpace}
    exec(blocks[0], namespace)
    with torch.no_grad():
        expected = namespace['model'](namespace['x'])
    for block, deployed in zip(blocks[1:], _DEPLOYED):
        if 'onnxruntime' in block and importlib.util.find_spec('onnxruntime') is None:
            continue
        exec(block, namespace)
        with torch.no_grad():
            assert torch.allclose(eval(deployed, namespace), expected, rtol=1e-4, atol=1e-5), deployed
