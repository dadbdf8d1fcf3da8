"""The value-choice and cell space sections of docs/benchmarks.md (hub MobileNetV3, hub DARTS), every number read
from the JSON results of mobilenet_space.py and darts_space.py."""

from __future__ import annotations

import statistics

from _report_sections import builds_line, fmt_ratio, md_table, provenance, range_line, sample_words

WEIGHT, SEARCH = 'ours: weight step only', 'ours: search, arch every 5'
TARGETS = {'mobilenet': {WEIGHT: 1.3, SEARCH: 1.5}, 'darts': {SEARCH: 1.5}}
MEMORY_TARGET = {'mobilenet': 1.3, 'darts': 1.5}
LATENCY_TARGET = 18 / 20  # within 10% for at least 18 of 20 architectures


def headlines(r: dict) -> tuple[str, ...]:
    """The headline bullets of the two sections (empty strings for missing results)."""
    return _headline('MobileNetV3 (value choices, 32x32)', r.get('mobilenet_space')), \
        _headline('DARTS cells (cifar, width 16, 8 cells)', r.get('darts_space'))


def _headline(title: str, result: dict | None) -> str:
    if not result:
        return ''
    c, m = result['cost'], result['memory']
    whole = 'process_ratios' in m
    memory = lambda name: (f'whole process {fmt_ratio(m["process_ratios"].get(name))}, per step ' if whole  # noqa: E731
                           else 'per step ') + fmt_ratio(m['tensor_ratios'].get(name))
    others = [name for name in m['tensor_ratios'] if not name.startswith('ours')]
    nni = ''.join(f'; {name.split(":")[0]} (architecture step every batch) {fmt_ratio(c["ratios"].get(name))} '
                  f'(memory {memory(name)})' for name in others)
    failed = ''.join(f'; {name.split(":")[0]} failed' for name in c['errors'])
    weight = f'weight step {fmt_ratio(c["ratios"][WEIGHT])}, ' if WEIGHT in c['ratios'] else ''
    latency = result.get('latency')
    table = (f'; `cpu` table within 10% for {round(latency["within_10_percent"] * latency["archs"])} of '
             f'{sample_words(latency)}' if latency else '')
    trimmed = c.get('ratios_to_trimmed')
    own = (f' (against the same subnets with their kernels trimmed as ours: {fmt_ratio(trimmed.get(WEIGHT))} / '
           f'{fmt_ratio(trimmed.get(SEARCH))})' if trimmed else '')
    hires = result.get('cost_hires')
    at_hires = (f'; at {hires["resolution"]}x{hires["resolution"]}'
                + (', where no kernel tap is trimmed,' if _untrimmed(hires) else '')
                + f' against subnets of the same paths: {fmt_ratio(hires["ratios"].get(WEIGHT))} / '
                f'{fmt_ratio(hires["ratios"].get(SEARCH))}' if hires else '')
    return (f'**Hub {title}**, batch {c["batch_size"]}, ratio to a frozen subnet: ours {weight}search with an '
            f'architecture step every 5 batches {fmt_ratio(c["ratios"].get(SEARCH))}{own}{at_hires} (peak memory of '
            f'the search {memory(SEARCH)}){nni}{failed}{table}.')


def mobilenet(r: dict, links: dict) -> str:
    result = r.get('mobilenet_space')
    if not result:
        return ''
    return '\n\n'.join(filter(None, [
        f'## Value choices: hub MobileNetV3 ({_resolutions(result)})',
        f'{result["space"]}. The space is NNI 3.0\'s `MobileNetV3Space` built as the tests\' hub-space test builds '
        'it (NNI\'s defaults; only `num_labels=10`): value choices of stage widths, kernel sizes and expansion '
        'ratios (`nni.choice` inside `MutableConv2d` and friends, searched by our sliced mixed ops), a `Repeat` '
        'depth of 1-4 blocks per stage and optional squeeze-excite `LayerChoice`s. NNI\'s `DARTS` searches the '
        'value choices by weighted sums of the sliced weights (one convolution at the largest size).',
        _cost(result, 'mobilenet'), _cost_hires(result), _memory(result, 'mobilenet'), _latency(result['latency']),
        _mobilenet_notes(result), provenance(result)]))


def _resolutions(result: dict) -> str:
    hires = (result.get('cost_hires') or {}).get('resolution')
    return '32x32' + (f' and {hires}x{hires}' if hires else '')


def darts(r: dict, links: dict) -> str:
    result = r.get('darts_space')
    if not result:
        return ''
    return '\n\n'.join(filter(None, [
        '## Cells: hub DARTS (cifar, 32x32)',
        f'{result["space"]}. NNI 3.0\'s `DARTS` space built as the tests\' hub-space test builds it: NNI `Cell`s '
        '(normal and reduce) whose four nodes each take two inputs among the previous nodes, each through one '
        'of seven operations; our cell op runs the sampled inputs and operations, NNI\'s `DARTS` and '
        '`GumbelDARTS` every operation on every input. The subnets are random cells (every input and '
        'operation drawn uniformly).', _cost(result, 'darts'), _memory(result, 'darts'), provenance(result)]))


def _mobilenet_notes(result: dict) -> str:
    c, m, a = result['cost'], result['memory'], result['latency']
    notes = []
    if 'ratios_to_trimmed' in c:
        notes.append('At 32x32 the last stages run on 1x1 and 2x2 maps, where most taps of a 5x5 or 7x7 depthwise '
                     'kernel meet only zero padding; our sliced convolutions drop those taps (`trim_to_input`: the '
                     'same outputs and gradients) and a plain `nn.Conv2d` does not. That saving is part of the '
                     'ratios to the frozen subnets; the second baseline, the same subnets with their convolutions '
                     'trimmed the same way, leaves it out and shows the search\'s own overhead: the supernet\'s '
                     'Python-level routing of about a hundred sliced layers and 67 labels per step, the optimiser\'s '
                     'update of the max-size weights, and in an architecture step the widened layers and the gated '
                     'values\' extra outputs.')
    hires = result.get('cost_hires')
    if hires and _untrimmed(hires):
        size = f'{hires["resolution"]}x{hires["resolution"]}'
        notes.append(f'At {size} the last stages run on {hires["resolution"] // 32}x{hires["resolution"] // 32} maps, '
                     'where every tap of a kernel of up to 7 meets some input: nothing is trimmed, ours and the '
                     'subnets run the same convolutions, and with ours pinned to each subnet\'s path the ratios there '
                     f'are the search\'s own cost ({fmt_ratio(hires["ratios"].get(WEIGHT))} for the weight step, '
                     f'{fmt_ratio(hires["ratios"].get(SEARCH))} with an architecture step every 5 batches).')
    if 'process_ratios' in m and SEARCH in m['process_growth_mb']:
        notes.append(f'Whole process: our search peaked {m["process_growth_mb"][SEARCH]:.0f} MB above the imports '
                     f'against the subnet\'s {m["subnet_process_growth_mb"]:.0f} MB. Between steps it holds '
                     f'{m["resident_mb"][SEARCH]:.0f} MB of weights, gradients and optimiser state against the '
                     f'subnet\'s {m["subnet_resident_mb"]:.0f} MB (the supernet\'s layers at their largest sizes), and '
                     f'a step allocates {m["tensor_peak_mb"][SEARCH]:.0f} MB of tensors against '
                     f'{m["subnet_tensor_peak_mb"]:.0f} MB.')
    if (m['tensor_ratios'].get(SEARCH) or 0) > MEMORY_TARGET['mobilenet']:
        notes.append('Each backward allocates full-size gradients for the sliced max-size weights (autograd\'s own '
                     'slicing, which keeps gradients right for every optimiser, gradient hook, `autograd.grad` and '
                     'dtype change), so a step\'s tensors exceed the subnet\'s, weight steps included; the '
                     'architecture step adds the activations of width labels run at the widest of the two gated '
                     'values (docs/search-spaces.md).')
    notes.append('A layer timed alone runs with its weights in cache; in the network at batch 1 it reads them from '
                 'memory (a 1x1 convolution with 5 MB of weights on a 1x1 map: 110 us hot, 466 us after the caches '
                 'were flushed). So the table\'s calibration fits a cost per megabyte of weights besides its scale '
                 '(docs/latency.md, `build_latency_table` step 4); with the scale alone, runs of this table met 10% '
                 'on 5 to 14 of 20 architectures.')
    if a['within_10_percent'] < LATENCY_TARGET:
        notes.append('What is left is the timing itself on this shared 2-core machine. Its speed moves by several '
                     'percent within seconds, so a table calibrated in a faster (slower) moment than the subnets\' '
                     'timing predicts them all low (high) by that much. The figures in brackets under the latency '
                     'table show how far this run\'s own timings agree with themselves. In 12 diagnostic builds, no '
                     'other moment for the calibration\'s timings (before the module pricing, right after the '
                     'build, or averages of these) met the target more often than the shipped one (9 of 12).')
    return 'Notes. ' + ' '.join(notes) if notes else ''


def _cost(result: dict, space: str) -> str:
    c = result['cost']
    targets, trimmed = TARGETS[space], c.get('ratios_to_trimmed')
    rows = [[name, fmt_ratio(ratio), *([fmt_ratio(trimmed.get(name))] if trimmed else []), f'{c["step_ms"][name]:.0f}',
             _target(ratio, targets.get(name))] for name, ratio in c['ratios'].items()]
    blank = ['-'] * (1 if trimmed else 0)
    rows += [[name, 'failed', *blank, '-', f'`{error}`'] for name, error in c['errors'].items()]
    rows += [[name, 'not timed', *blank, '-', why] for name, why in result.get('not_timed', {}).items()]
    fewer = ''.join(f'; {name}: {steps} per fit' for name, steps in c.get('steps_of', {}).items())
    counted = f'; {_trimmed_words(c, "32x32")}' if c.get('convolutions_trimmed') else ''
    second = (f'; second baseline: the same subnets with their convolutions trimmed as ours are, '
              f'{c["trimmed_step_ms"]:.0f} ms per step{counted}' if trimmed else '')
    return (f'**Cost per epoch** ({c["steps"]} timed batches x {c["rounds"]} rounds{fewer}; ours takes an '
            'architecture step every 5 batches ("arch every 5") or none ("weight step only"), NNI\'s strategies one '
            'every batch, on a second, validation batch; ratios of the median time per batch; baseline: the mean of '
            f'{c["subnets"]} random frozen subnets, {c["frozen_step_ms"]:.0f} ms per step, slowest '
            f'{c["frozen_spread"]:.2f}x the fastest{second}):\n\n'
            + md_table(['contender', 'ratio to a frozen subnet', *(['ratio to a trimmed subnet'] if trimmed else []),
                        'ms per step', 'target'], rows))


def _cost_hires(result: dict) -> str:
    c = result.get('cost_hires')
    if not c:
        return ''
    size, targets = f'{c["resolution"]}x{c["resolution"]}', TARGETS['mobilenet']
    rows = [[name, fmt_ratio(ratio), ', '.join(fmt_ratio(v) for v in c['path_ratios'][name]),
             f'{c["step_ms"][name]:.0f}', _target(ratio, targets.get(name))] for name, ratio in c['ratios'].items()]
    return (f'**Cost per epoch at {size}** (batch {c["batch_size"]}; {_trimmed_words(c, size)}; ours pinned to the '
            f'path of each of {c["paths"]} random frozen subnets in turn, as memory.py pins it; {c["steps"]} timed '
            f'batches x {c["rounds"]} rounds per path, fewer than at 32x32: a subnet\'s step costs '
            f'{c["frozen_step_ms"] / result["cost"]["frozen_step_ms"]:.1f} times one at 32x32; ratios of the mean '
            'over the paths of the median time per batch; baseline: the subnets of those paths, '
            f'{c["frozen_step_ms"]:.0f} ms per step, slowest {c["frozen_spread"]:.2f}x the fastest; NNI\'s DARTS '
            f'not timed: it holds about 14 GB at 32x32 and would hold {(c["resolution"] / 32) ** 2:.0f} times the '
            'activations here):\n\n'
            + md_table(['contender', 'ratio to the frozen subnets of the same paths', 'per path', 'ms per step',
                        'target'], rows))


def _trimmed_words(c: dict, size: str) -> str:
    """How many convolutions of the subnets lose kernel taps to the trimming at the cost's resolution ``size``."""
    counts = c.get('convolutions_trimmed') or []
    if not counts:
        return ''
    if all(n == 0 for n, _ in counts):
        return f'at {size} no convolution of the subnets loses a kernel tap to the trimming'
    lost, totals = [n for n, _ in counts], [total for _, total in counts]
    return (f'at {size} {_span(lost)} of each subnet\'s {_span(totals)} convolutions lose kernel taps to the '
            'trimming')


def _span(values: list[int]) -> str:
    return f'{min(values)}' if min(values) == max(values) else f'{min(values)} to {max(values)}'


def _untrimmed(c: dict) -> bool:
    return bool(c.get('convolutions_trimmed')) and all(n == 0 for n, _ in c['convolutions_trimmed'])


def _target(value: float | None, target: float | None) -> str:
    if target is None:
        return ''
    met = value is not None and value <= target
    return f'<= {target}x: {"met" if met else "**missed**"}'


def _memory(result: dict, space: str) -> str:
    m = result['memory']
    target, resident, whole = MEMORY_TARGET[space], 'resident_ratios' in m, 'process_ratios' in m
    extra = lambda name: ([fmt_ratio(m['process_ratios'].get(name))] if whole else []) + (  # noqa: E731
        [fmt_ratio(m['resident_ratios'].get(name)), fmt_ratio(m['total_ratios'].get(name))] if resident else [])
    rows = [['frozen subnet (baseline)', f'{m["subnet_tensor_peak_mb"] or 0:.0f} MB', f'{m["subnet_growth_mb"]:.0f} MB',
             *([f'{m["subnet_process_growth_mb"]:.0f} MB'] if whole else []),
             *([f'{m["subnet_resident_mb"]:.0f} MB', f'{m["subnet_total_mb"]:.0f} MB'] if resident else []), '']]
    rows += [[name, fmt_ratio(m['tensor_ratios'].get(name)), fmt_ratio(ratio), *extra(name),
              _target(m['tensor_ratios'].get(name), target) if name == SEARCH else '']
             for name, ratio in m['ratios'].items()]
    rows += [[name, 'failed', '-', *['-'] * (int(whole) + 2 * int(resident)), f'`{error}`']
             for name, error in m['errors'].items()]
    process = (' Whole process: the peak RSS of the child from its baseline (the interpreter and every import, '
               f'{statistics.mean(m["baseline_mb"].values()):.0f} MB) to the end of the first window, minus the '
               'baseline: building, the first batch and the window, with everything they hold (parameters, '
               'gradients, optimiser state, Lightning, the data, activations); the frozen subnets are built alone '
               '(NNI\'s `model_context`) and hold the search\'s validation batches too (unused).' if whole else '')
    kept = (' Resident: what stays allocated between steps (weights, their gradients, the optimisers\' state; the '
            'supernet keeps its layers at their largest sizes, as Once-for-All does, with a full-size gradient for '
            'each weight the step used); total: resident plus the step\'s tensors.' if resident else '')
    return (f'**Peak memory** (memory.py\'s method: one process per contender and path; {m["paths"]} random paths, '
            'ours pinned to each; NNI\'s strategies run every candidate whatever their architecture weights, so they '
            f'are not pinned; {m["steps"]} batches per window): of a training step, torch\'s live allocations and the '
            f'process RSS growth, ratio to the frozen subnets\'.{process}{kept}'
            '\n\n' + md_table(['contender', 'tensors (per step)', 'RSS (per step)',
                               *(['whole process'] if whole else []), *(['resident', 'total'] if resident else []),
                               'target (tensors)'], rows))


def _latency(a: dict) -> str:
    within = round(a['within_10_percent'] * a['archs'])
    met = 'met' if a['within_10_percent'] >= LATENCY_TARGET else '**missed**'
    return (f'**`cpu` latency table** (built in {a.get("table_build_seconds", "-")} s with an empty cache, input '
            f'1x3x32x32, 1 thread) against the end-to-end latency of the frozen subnets of {sample_words(a)}, '
            'measured by the package\'s `cpu` predictor (latency_accuracy.py\'s method):\n\n'
            + md_table(['within 10%', 'median error', 'largest error', 'Spearman', 'target'],
                       [[f'{within}/{a["archs"]}', f'{a["median_abs_error"]:.1%}', f'{a["max_abs_error"]:.1%}',
                         f'{a["spearman"]:.3f}', f'>= 18 of 20: {met}']])
            + builds_line(a) + range_line(a)
            + (f'\n\nCommand: `{a["command"]}` ({a["wall_seconds"]} s, load average {a["load_average_start"]} at '
               'start), rerun after the rest of this section.' if 'command' in a else ''))
