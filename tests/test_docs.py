"""What the documentation shows comes from a run: error messages quoted in docs/reliability.md, outputs shown in
docs/getting-started.md; and the documentation the code cites exists, as the names docs/design.md gives do."""

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


# --------------------------------------------------------------------------------- docs/design.md and the code

PACKAGE = Path(__file__).resolve().parents[1] / 'nni_proxyless'
_DOC_FILE = re.compile(r'docs/([\w.-]+\.md)')
_DOC_SECTION = re.compile(r'docs/([\w.-]+\.md),\s+"([^"]+)"')
_NAME = re.compile(r'`([a-z_]\w*(?:\.\w+)+)`')


def _package_text() -> dict[str, str]:
    return {str(path.relative_to(PACKAGE.parent)): path.read_text() for path in sorted(PACKAGE.rglob('*.py'))}


def _headings(name: str) -> set[str]:
    """The titles of a page's headings, without their numbers (``## 4. Formulas`` -> ``Formulas``)."""
    return {re.sub(r'^\d+\.\s+', '', line.lstrip('#').strip()) for line in (DOCS / name).read_text().splitlines()
            if line.startswith('#')}


def test_modules_cite_only_documents_in_the_repository():
    """No module cites the design notes that are not in the repository, a docs/*.md that does not exist, or a
    section ``docs/x.md, "Title"`` that the page has no heading for."""
    for path, text in _package_text().items():
        assert not re.search(r'\bDESIGN\b', text), f'{path} cites DESIGN: point it to docs/design.md instead'
        for name in _DOC_FILE.findall(text):
            assert (DOCS / name).is_file(), f'{path} cites docs/{name}, which does not exist'
        for name, title in _DOC_SECTION.findall(text):
            title = ' '.join(title.split())
            assert title in _headings(name), f'{path} cites docs/{name}, "{title}": no such heading'


def _design_text() -> str:
    """docs/design.md without its fenced code blocks (the data-path diagram is not backticked names)."""
    return re.sub(r'```.*?```', '', (DOCS / 'design.md').read_text(), flags=re.S)


def _formula_holders() -> list[str]:
    """The second column of the formula table in docs/design.md's section "Formulas and where they live"."""
    text = _design_text()
    section = text[text.index('## 4. Formulas and where they live'):]
    section = section[:section.index('\n## ', 1)]
    holders = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
        if line.startswith('|') and len(cells) == 3 and cells[1] not in ('holder', '---'):
            [holder] = _NAME.findall(cells[1])
            holders.append(holder)
    return holders


def _resolve(dotted: str):
    """``nni_proxyless.<dotted>``: the longest importable module prefix, then attributes."""
    import importlib
    parts = dotted.split('.')
    for end in range(len(parts), 0, -1):
        module_name = 'nni_proxyless.' + '.'.join(parts[:end])
        try:
            found = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and module_name.startswith(error.name):
                continue
            raise
        for attribute in parts[end:]:
            found = getattr(found, attribute)
        return found
    raise AssertionError(f'{dotted}: no module of nni_proxyless')


def test_design_formula_table_names_functions_that_exist():
    """Every formula's holder in docs/design.md is a function (or method) of the package, found where the page
    says: moving or renaming one fails here until the page follows."""
    holders = _formula_holders()
    assert len(holders) >= 15, holders
    for holder in holders:
        assert callable(_resolve(holder)), holder


def test_design_names_resolve():
    """Every backticked dotted name in docs/design.md that starts with a module of the package exists."""
    import pkgutil
    modules = {info.name for info in pkgutil.iter_modules([str(PACKAGE)])}
    names = {name for name in _NAME.findall(_design_text())
             if name.split('.')[0] in modules and not name.endswith(('.py', '.md', '.json'))}
    assert len(names) > 50, sorted(names)
    missing = []
    for name in sorted(names):
        try:
            _resolve(name)
        except (AttributeError, AssertionError, ImportError):
            missing.append(name)
    assert not missing, f'docs/design.md names what the package does not have: {missing}'


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
    routes = (DOCS / 'deploy.md').read_text().split('## From a search to a file on the device', 1)[1]
    blocks = re.findall(r'```python\n(.*?)```', routes, re.DOTALL)
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
