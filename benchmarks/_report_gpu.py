"""The GPU section of docs/benchmarks.md (``benchmarks/gpu.py``), every number read from its JSON result."""

from __future__ import annotations

from _report_sections import fmt_ratio, md_table

TITLE = '## GPU and mixed precision (hub ProxylessNAS, 224x224, one GPU)'
COMMAND = 'python benchmarks/gpu.py --out benchmarks/results/gpu.json'
SHORT = {'32-true': 'fp32', 'bf16-mixed': 'bf16', '16-mixed': 'fp16'}


def gpu(r: dict, links: dict) -> str:
    g = r.get('gpu')
    if not g:
        return '\n\n'.join([TITLE, f'Not measured for this page (no `benchmarks/results/gpu.json`). On a machine '
                                   f'with a CUDA GPU, `{COMMAND}` measures it (under 8 minutes on one H200, no '
                                   'network) and redraws this page.'])
    quick = ' **A `--quick` smoke run on the CPU: the figures are not meaningful.**' if g.get('quick') else ''
    parts = [TITLE, _intro(g) + quick]
    for group in g['groups']:
        parts += [_group(group, g['precisions'])]
    parts += [_latency(g), _syncs(g), _skipped(g), _provenance(g)]
    return '\n\n'.join(part for part in parts if part)


def _intro(g: dict) -> str:
    return ('Per-step time and peak CUDA memory of one training step, each search pinned to the frozen subnet\'s '
            'path (logits or alphas at +-10), so that a ratio is what the strategy adds to training that subnet. '
            'Ratios are to the frozen subnet at the same precision (the subnet rows give milliseconds, and the '
            'mixed-precision ones their speed against fp32). Precisions are Lightning\'s `32-true`, `bf16-mixed` '
            'and `16-mixed` (fp16 with a gradient scaler, which our architecture step shares). Data: '
            'torchvision `FakeData` images kept on the GPU. Timing as above, with the GPU synchronised at the '
            'start and the end of the timed batches; peak memory is `torch.cuda.max_memory_allocated` over the '
            'timed batches minus what was allocated when they started. NNI\'s search contenders run '
            f'{_nni_steps(g)} timed batches per fit, the others {_steps(g)}.')


def _steps(g: dict) -> str:
    return str(g['groups'][0]['steps']) if g['groups'] else '-'


def _nni_steps(g: dict) -> str:
    return str(g['groups'][0]['nni_steps']) if g['groups'] else '-'


def _group(group: dict, precisions: list[str]) -> str:
    runs = {(run['name'], run['precision']): run for run in group['runs']}
    names = list(dict.fromkeys(run['name'] for run in group['runs']))
    headers = ['contender'] + [SHORT.get(p, p) for p in precisions] + \
              ['peak memory ' + ' / '.join(SHORT.get(p, p) for p in precisions)]
    rows = []
    for name in names:
        cells = [_time_cell(runs.get((name, p))) for p in precisions]
        memory = ' / '.join(_memory_cell(runs.get((name, p))) for p in precisions)
        rows.append([name] + cells + [memory])
    rounds = max((run['rounds'] for run in group['runs']), default=0)
    failed = '; '.join(f'{run["name"]} ({run["precision"]}): {run["error"]}' for run in group['runs']
                       if run['error'] and run['error'] != 'out of memory')
    return '\n\n'.join(filter(None, [f'### Width {group["width"]}, batch {group["batch_size"]}',
                                      f'Medians over {rounds} rounds (the path is in the JSON).',
                                      md_table(headers, rows), f'Failed: {failed}.' if failed else '']))


def _time_cell(run: dict | None) -> str:
    if run is None:
        return '-'
    if run['error']:
        return run['error'] if run['error'] == 'out of memory' else 'failed'
    if run['step_ms'] is None:
        return 'not timed'
    if run['name'] == 'subnet':
        against = run.get('ratio_to_fp32_subnet')
        if run['precision'] == '32-true' or against is None:
            return f'{run["step_ms"]:.1f} ms'
        return f'{run["step_ms"]:.1f} ms ({fmt_ratio(against)} fp32)'
    return f'{fmt_ratio(run["ratio"])} ({run["step_ms"]:.1f} ms)'


def _memory_cell(run: dict | None) -> str:
    if run is None or run['error'] or run['peak_growth_mb'] is None:
        return '-'
    if run['name'] == 'subnet':
        return f'{run["peak_growth_mb"]:.0f} MB'
    return fmt_ratio(run['peak_growth_ratio'])


def _latency(g: dict) -> str:
    lines = []
    for a in g['latency']:
        spearman = '-' if a['spearman'] is None else f'{a["spearman"]:.3f}'
        lines.append(f'- width {a["width"]}, input {tuple(a["input"])}: {a["within_10_percent"]:.0%} of {a["archs"]} '
                     f'random architectures within 10% of their measured end-to-end latency (median error '
                     f'{a["median_abs_error"]:.1%}, largest {a["max_abs_error"]:.1%}, Spearman {spearman}); table '
                     f'built in {a["table_build_seconds"]:.0f} s on {a["hardware_description"]}.')
    if not lines:
        return ''
    return (f'Latency tables (`applied_hardware=\'{g["latency"][0]["hardware"]}\'`), each against the same '
            'predictor timing the frozen subnets whole (median of rounds):\n\n' + '\n'.join(lines))


def _syncs(g: dict) -> str:
    audit = g.get('syncs')
    if not audit:
        return ''
    rows = [[run['name'], SHORT.get(run['precision'], run['precision']), f'{run["syncs_per_step"]:.1f}',
             '; '.join(run['examples']) or '-'] for run in audit['runs']]
    return ('Host-device synchronisations per training step (`torch.cuda.set_sync_debug_mode(\'warn\')`, width '
            f'{audit["width"]}, batch {audit["batch_size"]}, {audit["steps"]} steps; the evaluator\'s and the '
            'gradient scaler\'s own included, so the subnet row is the floor):\n\n'
            + md_table(['contender', 'precision', 'per step', 'first messages'], rows))


def _skipped(g: dict) -> str:
    if not g.get('skipped'):
        return ''
    return 'Not measured in this run: ' + '; '.join(g['skipped']) + '.'


def _provenance(g: dict) -> str:
    device = g.get('gpu', {})
    where = ', '.join(f'{k} {v}' for k, v in device.items())
    return (f'Command: `{g["command"]}` ({g["wall_seconds"]:.0f} s). GPU: {where}. Host: {g["machine"]}. Load '
            f'average {g["load_average_start"]} at start, {g["load_average_end"]} at end.')
