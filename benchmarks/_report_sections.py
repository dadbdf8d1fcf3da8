"""The page's frame (intro, headline, reproducing) and the helpers its sections share; every number from JSON."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# NNI 3.0's figures as DESIGN.md section 8 measured them on this stack, and the project's targets.
DESIGN_COST = {'ours: weight step only': 'target <= 1.1x', 'ours: search, arch every 5': 'target <= 1.4x',
               'NNI Proxyless: weight step only': 'DESIGN: 3.0-3.4x', 'NNI Proxyless: search': 'DESIGN: 5.9-6.6x',
               'NNI DARTS: search': 'DESIGN: 19x'}
DESIGN_MEMORY = {'ours: search, arch every 5': 'target <= 1.3x',
                 'NNI Proxyless: search': 'DESIGN: 2.2x / 2.6x (RSS, unpinned)',
                 'NNI DARTS: search': 'DESIGN: 5.3x / 8.8x (RSS, unpinned)'}
TIMING_METHOD = ('one process, `torch.set_num_threads(1)`; the contenders are fitted round-robin (interleaved), '
                 'one warm-up fit each, then every round fits each once; a fit is one Lightning epoch, and its '
                 'time is the wall time of its training batches (callbacks at batch start and end; set-up, '
                 'validation and the epoch-end hooks excluded), the first batch of every fit run but not timed '
                 '(one-time work a long search pays once: optimiser state, our one-time candidate shape check); '
                 'the figure is the median over rounds, divided by the baseline measured in the same rounds')


def fmt_ratio(value: float | None) -> str:
    return '-' if value is None else f'{value:.2f}x'


def md_table(headers: list[str], rows: list[list]) -> str:
    lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)


def provenance(result: dict) -> str:
    return (f'Command: `{result["command"]}` ({result["wall_seconds"]:.0f} s). Machine: {result["machine"]}. '
            f'Load average {result["load_average_start"]} at start, {result["load_average_end"]} at end.')


_BUILD_FIGURES = (
    ('drift', lambda b, n: f'drift {b["drift"] - 1:+.1%}',
     'the drift, how much slower the subnets ran right after the build than right before it (median over them)'),
    ('repeat_within_10_percent', lambda b, n: f'repeat {round(b["repeat_within_10_percent"] * n)}/{n}',
     'the repeat, for how many subnets those two timings agree within 10%'),
    ('instances_within_10_percent', lambda b, n: f'instances {round(b["instances_within_10_percent"] * n)}/{n}',
     'the instances, for how many a second instance of the subnet, timed in the same rounds, agrees within 10%'),
    ('within_10_percent_at_subnets_moment',
     lambda b, n: f'at their moment {round(b["within_10_percent_at_subnets_moment"] * n)}/{n}',
     'the table\'s count with its level taken at the subnets\' moment (its calibration networks timed again in '
     'the subnets\' rounds)'),
)
"""Per-build figures of a latency accuracy result: key, how a build shows it, what it is."""


def builds_line(accuracy: dict) -> str:
    """Each fresh table's count within 10%, after a table of the median one, with the figures of
    :data:`_BUILD_FIGURES` that every build has (empty for results of one build)."""
    builds, n = accuracy.get('builds', []), accuracy['archs']
    if len(builds) < 2:
        return ''
    figures = [figure for figure in _BUILD_FIGURES if all(figure[0] in b for b in builds)]

    def count(b: dict) -> str:
        brackets = '; '.join(show(b, n) for _, show, _ in figures)
        return f'{round(b["within_10_percent"] * n)}/{n}' + (f' ({brackets})' if brackets else '')

    return (f'\n\nThe row is the median of {len(builds)} fresh tables, each built, then checked against the subnets '
            f'timed right after it; within 10%: {", ".join(map(count, builds))}.'
            + (f' In brackets: {"; ".join(meaning for _, _, meaning in figures)}.' if figures else ''))


def sample_words(accuracy: dict) -> str:
    """What a latency accuracy result checked the table on: a sample stratified over the latency range (results
    that record the fixed part per build), else random architectures (older results)."""
    n = accuracy['archs']
    if 'fixed_ms_over_builds' not in accuracy:
        return f'{n} random architectures'
    return f'{n} architectures over the whole latency range (the table\'s 5 fastest and 5 slowest, {n - 10} random)'


def range_line(accuracy: dict) -> str:
    """The fixed part over the builds and whether a target near the fastest subnet was accepted (empty for older
    results)."""
    fixed, builds = accuracy.get('fixed_ms_over_builds'), accuracy.get('builds', [])
    if not fixed:
        return ''
    accepted = sum(bool(b.get('target_near_fastest_accepted')) for b in builds)
    return (f' The fixed part of the {len(fixed)} tables: {", ".join(f"{f:.3f}" for f in fixed)} ms (spread '
            f'{accuracy["fixed_spread_ms"]:.3f} ms). A `latency_target` 5% above the fastest measured subnet was '
            f'accepted by {accepted} of {len(builds)} tables.')


def by_batch(result: dict | None, batch: int) -> dict:
    for group in (result or {}).get('by_batch_size', []):
        if group['batch_size'] == batch:
            return group
    return {}


def ratio_at(result: dict | None, batch: int, name: str) -> float | None:
    return by_batch(result, batch).get('ratios', {}).get(name)


def figure_link(links: dict, name: str, alt: str) -> str:
    return f'![{alt}]({links[name]})' if name in links else ''


def intro(r: dict) -> str:
    run = r['run'] or {}
    machine = next((r[k]['machine'] for k in ('cost', 'planted', 'latency_accuracy') if r.get(k)), 'unknown')
    total = run.get('total_seconds')
    timing = f'{total / 60:.1f} minutes' if total else 'unknown time'
    quick = ' **This is a `--quick` smoke run: the figures are not meaningful.**' if run.get('quick') else ''
    return (f'# Benchmarks\n\nnni-proxyless against NNI 3.0\'s built-in `Proxyless` and `DARTS` (imported from '
            f'`nni.nas.oneshot.pytorch.strategy`), every figure a ratio of things measured side by side in one run '
            f'on one machine.{quick} Generated by `make bench` (`{run.get("command", "python benchmarks/run_all.py")}`'
            f'), which ran every script below in {timing}, load average {run.get("load_average_start")} at start '
            f'and {run.get("load_average_end")} at end (other work on the machine slows both sides of a ratio, '
            f'not evenly: treat differences under about 10% as noise){_reruns(run)}. Machine: {machine}. The raw '
            'figures are in `benchmarks/results/*.json`; `python benchmarks/report.py` redraws this page from them.\n\n'
            f'Timing method (every timing table): {TIMING_METHOD}.')


def _reruns(run: dict) -> str:
    """Scripts rerun alone after the full run (``run_all.py --only``), with their time and load."""
    parts = [f'{", ".join(rerun["only"])} run alone later ({rerun["total_seconds"] / 60:.1f} minutes, load average '
             f'{rerun["load_average_start"]} at start)' for rerun in run.get('partial_reruns', [])]
    last = ' (in this order; the figures of a script are from its last run)' if len(parts) > 1 else ''
    return '; ' + '; '.join(parts) + last if parts else ''


def headline(r: dict, extra: tuple[str, ...] = ()) -> str:
    """The headline bullets, then ``extra`` ones (sections rendered elsewhere)."""
    bullets = [_headline_cost(r), _headline_memory(r), _headline_scaling(r), _headline_planted(r),
               _headline_target(r), _headline_latency(r), *extra]
    return '## Headline\n\n' + '\n'.join(f'- {b}' for b in bullets if b)


def _headline_cost(r: dict) -> str:
    if not r['cost']:
        return ''
    c = r['cost']
    pairs = lambda name: ' / '.join(fmt_ratio(ratio_at(c, b, name)) for b in (32, 128))  # noqa: E731
    return (f'**Cost per epoch** (hub ProxylessNAS, batch 32 / 128, ratio to training a frozen subnet): weight step '
            f'{pairs("ours: weight step only")} (NNI Proxyless {pairs("NNI Proxyless: weight step only")}); full '
            f'search with an architecture step every 5 batches {pairs("ours: search, arch every 5")}, every batch '
            f'{pairs("ours: search, arch every 1")} (NNI Proxyless, every batch: '
            f'{pairs("NNI Proxyless: search")}; NNI DARTS, every batch: {pairs("NNI DARTS: search")}).')


def _headline_memory(r: dict) -> str:
    if not r['memory']:
        return ''
    m = r['memory']
    pairs = lambda name, key: ' / '.join(  # noqa: E731
        fmt_ratio(by_batch(m, b).get(key, {}).get(name)) for b in (32, 128))
    whole = all('process_ratios' in g for g in m['by_batch_size'])
    both = lambda name: ((f'whole process {pairs(name, "process_ratios")}, ' if whole else '')  # noqa: E731
                         + f'per step {pairs(name, "tensor_ratios")} (per-step RSS {pairs(name, "ratios")})')
    what = ('the whole process\'s peak RSS above the interpreter and imports (parameters, gradients, optimiser '
            'state, Lightning, data, activations) and ' if whole else '')
    return (f'**Peak memory** of a search over training the frozen subnet alone on the same path (hub ProxylessNAS, '
            f'batch 32 / 128; {what}a step\'s own peak: torch\'s live allocations, and the process RSS growth): '
            f'ours at arch_update_every=5 {both("ours: search, arch every 5")}; NNI Proxyless (architecture step '
            f'every batch) {both("NNI Proxyless: search")}; NNI DARTS (every batch) {both("NNI DARTS: search")}.')


def _headline_scaling(r: dict) -> str:
    if not r['scaling']:
        return ''
    rows = r['scaling']['by_candidates']
    first, last = rows[0], rows[-1]
    span = lambda name: f'{fmt_ratio(first["ratios"].get(name))} -> {fmt_ratio(last["ratios"].get(name))}'  # noqa: E731
    return (f'**Scaling** from {first["candidates"]} to {last["candidates"]} candidates per choice (search epochs): '
            f'ours with an architecture step every 5 batches {span("ours: search, arch every 5")}, NNI Proxyless '
            f'(every batch) {span("NNI Proxyless: search")}, NNI DARTS (every batch) {span("NNI DARTS: search")}.')


def _headline_planted(r: dict) -> str:
    if not r['planted']:
        return ''
    p, n = r['planted']['methods'], r['planted']['seeds']
    get = lambda name, key: p.get(name, {}).get(key, '-')  # noqa: E731
    return (f'**Planted optimum** ({n} seeds x {r["planted"]["epochs"]} epochs, digits): ours exports it '
            f'{get("ours gradient", "exported_planted")}/{n} (gradient), REINFORCE on the destructive variant '
            f'{get("ours REINFORCE, destructive", "exported_planted")}/{n}; NNI\'s Proxyless exports it '
            f'{get("NNI Proxyless", "exported_planted")}/{n} (its export is a random sample; its most probable '
            f'architecture is right {get("NNI Proxyless", "argmax_planted")}/{n}).')


def _headline_target(r: dict) -> str:
    if not r['latency_target']:
        return ''
    t = r['latency_target']
    g = t['groups']
    show = lambda name: (f'{g[name]["accuracy_mean"]:.3f} ± {g[name]["accuracy_std"]:.3f} at '  # noqa: E731
                         f'{g[name]["mflops_mean"]:.2f} MFLOPs, {g[name]["within_target"]}/{g[name]["count"]} within')
    return (f'**Under a latency target** ({t["target_mflops"]} MFLOPs on digits; exports retrained from scratch, test '
            f'accuracy): ours with `latency_target` {show("ours, latency_target")}; ours with the soft `add#linear` '
            f'loss {show("ours, add#linear")}; NNI Proxyless {show("NNI Proxyless")}; random architectures within '
            f'the target {show("random within target")}.')


def _headline_latency(r: dict) -> str:
    if not r['latency_accuracy']:
        return ''
    a = r['latency_accuracy']
    return (f'**`cpu` latency table**: {a["within_10_percent"]:.0%} of {sample_words(a)} within '
            f'10% of their measured end-to-end latency (Spearman {a["spearman"]:.3f}).')


def reproduce(r: dict) -> str:
    scripts = [k for k in ('cost', 'memory', 'scaling', 'mobilenet_space', 'darts_space', 'modes', 'planted_optimum',
                           'latency_target', 'latency_accuracy', 'short_budget', 'batchnorm_recalibration',
                           'truth_search', 'deploy_front')
               if r.get(k.replace('_optimum', ''))]
    run = r['run'] or {}
    times = run.get('scripts', {})
    rows = [[f'`python benchmarks/{name}.py`', f'{times.get(name, {}).get("seconds", "-")} s'] for name in scripts]
    return ('## Reproducing\n\n`make bench` runs `python benchmarks/run_all.py` (every script, then '
            '`benchmarks/report.py`, which writes this page and `docs/benchmarks/*.png`). '
            '`python benchmarks/run_all.py --quick` is a smoke run of every script (about a minute; it writes '
            'into a temporary folder unless given `--results/--markdown/--plots`). Each script also runs alone, '
            'with `--quick` and `--json FILE`:\n\n' + md_table(['script', 'time in this run'], rows)
            + _truth_note(r))


def _truth_note(r: dict) -> str:
    truths = [t['truth'] for t in ((r.get('truth_search') or {}).get('truths') or {}).values()]
    if not truths:
        return ''
    made = ' and '.join(table_made_by(truth) for truth in truths)
    return f'\n\nThe ground truths that `truth_search.py` reads are not made by `make bench`: {made} regenerate them.'


def table_made_by(truth: dict) -> str:
    """How a ground-truth table was made, read from the committed table itself: its command and time, and for a
    table extended with more seeds (``ground_truth.py --extend``), the run it extended first."""
    table = json.loads((ROOT / truth['table']).read_text())
    made = f'`{table.get("command")} --json {truth["table"]}` in {(table.get("wall_seconds") or 0) / 60:.0f} minutes'
    earlier = table.get('extends')
    if not earlier:
        return made
    return (f'`{earlier["command"]} --json {truth["table"]}` ({earlier["seeds"]} seeds, '
            f'{(earlier.get("wall_seconds") or 0) / 60:.0f} minutes), then extended to {table["seeds"]} by {made}')
