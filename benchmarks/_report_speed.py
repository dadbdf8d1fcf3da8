"""The cost, memory and scaling sections of docs/benchmarks.md, every number read from the JSON results."""

from __future__ import annotations

import statistics

from _report_sections import DESIGN_COST, DESIGN_MEMORY, figure_link, fmt_ratio, md_table, provenance, ratio_at


def cost(r: dict, links: dict) -> str:
    c = r['cost']
    if not c:
        return ''
    names = list(c['by_batch_size'][0]['ratios'])
    rows = [[name] + [fmt_ratio(ratio_at(c, g['batch_size'], name)) for g in c['by_batch_size']]
            + [DESIGN_COST.get(name, '')] for name in names]
    headers = ['contender'] + [f'batch {g["batch_size"]}' for g in c['by_batch_size']] + ['target / NNI in DESIGN']
    base = ', '.join(f'{g["frozen_step_ms"]:.0f} ms per step at batch {g["batch_size"]} (slowest subnet '
                     f'{g["frozen_spread"]:.2f}x the fastest)' for g in c['by_batch_size'])
    steps = ', '.join(f'{g["steps"]} timed batches x {g["rounds"]} rounds at batch {g["batch_size"]}'
                      for g in c['by_batch_size'])
    return '\n\n'.join(filter(None, [
        '## Cost per epoch (hub ProxylessNAS, width 0.35, 32x32)',
        'Epoch time of each contender divided by that of a frozen subnet trained by the same evaluator (NNI\'s '
        '`Classification`, SGD) on the same random 32x32 data. "Weight step only" is the strategy with the '
        'architecture step off (`warmup_epochs` beyond the run); "search" includes the architecture steps at the '
        'stated frequency (NNI\'s strategies do one every batch, on a second, validation batch). The baseline is '
        f'the mean of {c["by_batch_size"][0]["subnets"]} random frozen subnets: {base}. {steps}.',
        md_table(headers, rows), figure_link(links, 'cost', 'cost ratios'), _cost_notes(c), provenance(c)]))


def _cost_notes(c: dict) -> str:
    notes = []
    for g in c['by_batch_size']:
        notes += _cost_notes_at(g)
    notes.append('An architecture step runs the validation batch through the sampled path plus, per choice, the '
                 'second candidate of the pair (`two`) or every candidate (`full_v2`, computed in backward without '
                 'a graph), and a backward that computes no weight gradient. REINFORCE runs 10 sampled whole '
                 'architectures forward per update (no backward), which costs more than one gradient update here. '
                 f'The baseline\'s own sampling error is about ±10% (its {c["by_batch_size"][0]["subnets"]} subnets '
                 'span up to 1.5x in time), which is how a weight step can come out below 1.0x.')
    return 'Notes. ' + ' '.join(notes)


def _cost_notes_at(g: dict) -> list[str]:
    ratios, batch, notes = g['ratios'], g['batch_size'], []
    weight, every5 = ratios.get('ours: weight step only'), ratios.get('ours: search, arch every 5')
    every1 = ratios.get('ours: search, arch every 1')
    if weight is not None and weight > 1.1:
        notes.append(f'Behind: at batch {batch} our weight step is {weight:.2f}x, above the 1.1x target.')
    if every5 is not None and every5 > 1.4:
        notes.append(f'Behind: at batch {batch} our search at arch_update_every=5 is {every5:.2f}x, above the 1.4x '
                     'target.')
    if every5 is not None and every1 is not None:
        notes.append(f'At batch {batch} one architecture step costs about {(every1 - every5) / 0.8:.2f} frozen '
                     'weight steps (from the difference between "every 1" and "every 5").')
    return notes


def memory(r: dict, links: dict) -> str:
    m = r['memory']
    if not m:
        return ''
    groups = m['by_batch_size']
    names, whole = list(groups[0]['ratios']), all('process_ratios' in g for g in groups)
    per_step = lambda g, n: f'{fmt_ratio(g["tensor_ratios"].get(n))} / {fmt_ratio(g["ratios"].get(n))}'  # noqa: E731
    base = [f'{g["subnet_tensor_peak_mb"] or 0:.0f} MB / {g["subnet_growth_mb"]:.0f} MB' for g in groups]
    rows = [['frozen subnet (baseline)', *([' / '.join(f'{g["subnet_process_growth_mb"]:.0f} MB' for g in groups)]
                                           if whole else []), *base, '']]
    for name in names:
        rows.append([name, *([' / '.join(fmt_ratio(g['process_ratios'].get(name)) for g in groups)] if whole else []),
                     *[per_step(g, name) for g in groups], DESIGN_MEMORY.get(name, '')])
    batches = ' / '.join(str(g['batch_size']) for g in groups)
    headers = ['contender', *([f'whole process, batch {batches}'] if whole else []),
               *[f'per step, batch {g["batch_size"]}: tensors / RSS' for g in groups], 'target / NNI in DESIGN']
    return '\n\n'.join(filter(None, [
        '## Peak memory (hub ProxylessNAS, width 0.35, 32x32)',
        _memory_method(groups, whole), md_table(headers, rows), figure_link(links, 'memory', 'memory ratios'),
        _memory_notes(m), provenance(m)]))


def _memory_method(groups: list[dict], whole: bool) -> str:
    reset = all(g['peak_reset'] for g in groups)
    how = ('`echo 5 > /proc/self/clear_refs` worked here (VmHWM reset at the baseline and after the first batch)'
           if reset else 'clear_refs could not be written here: the whole-process peak counts from the process\'s '
           'start, the RSS growth from the RSS before the first batch')
    baseline = ' / '.join(f'{statistics.mean(g["baseline_mb"].values()):.0f} MB' for g in groups) if whole else ''
    process = (f'**Whole process**: the peak RSS (`VmHWM`) from the baseline to the end of the first window, minus '
               f'the baseline (the interpreter and every import, NNI\'s strategies included in every child: '
               f'{baseline} at batch {" / ".join(str(g["batch_size"]) for g in groups)}): everything the process held '
               'at its worst moment of building, the first batch and the window (ours takes an architecture step '
               'every 5 batches, NNI\'s strategies every batch; no validation): parameters, gradients, optimiser '
               'state, Lightning, the data, activations. ' if whole else '')
    return ('One process per contender, path and batch size (two at a time): everything imported, then the baseline '
            'RSS, then the data and the build. The frozen subnet is built alone (NNI\'s `model_context`: only its '
            'chosen candidates are made, as an exported architecture is trained) and its trainer holds the '
            'search\'s validation batches too (unused), so that both hold the same data. Each search is pinned to '
            f'the path of a random frozen subnet ({groups[0]["paths"]} paths; logits or alphas set to +-10, so every '
            'step runs that path, plus in an architecture step the other gated candidates), trains one batch, then '
            f'two windows of {groups[0]["steps"]} batches. {process}**Per step, RSS**: give free heap pages back to '
            'the kernel (`malloc_trim(0)`), reset the peak (`VmHWM`) after the first batch, train the first window, '
            'read the growth of the peak over the RSS at the reset (what stays allocated between steps is not '
            'counted); **per step, tensors**: train the second window under '
            '`torch.profiler(profile_memory=True)` and take the peak of the bytes torch allocated and had not yet '
            'freed since the window began (activations, gradients, temporaries, the search\'s extra outputs; the '
            'weights allocated before are not counted). A figure is the contender\'s mean over the paths divided '
            f'by the frozen subnets\' (first row, in MB). {how}; children run with `MALLOC_MMAP_THRESHOLD_=65536` '
            'so freed tensors leave the RSS at once.')


def _memory_notes(m: dict) -> str:
    whole = all('process_ratios' in g for g in m['by_batch_size'])
    notes = [note for note in [_whole_note(m['by_batch_size']) if whole else ''] if note]
    for g in m['by_batch_size']:
        name = 'ours: search, arch every 5'
        tensors, rss = g['tensor_ratios'].get(name), g['ratios'].get(name)
        if tensors is not None and tensors > 1.3:
            notes.append(f'Behind: at batch {g["batch_size"]} our search at arch_update_every=5 allocates '
                         f'{tensors:.2f}x the subnet\'s tensor memory, above the 1.3x target.')
        if rss is not None and rss > 1.3:
            notes.append(f'Behind on the RSS figure: at batch {g["batch_size"]} the process RSS of our search grows '
                         f'{rss:.2f}x the subnet\'s, above the 1.3x target, although its tensors do not.')
    notes.append('The heap trim before the reset matters whenever set-up leaves freed memory behind: when the '
                 'frozen subnet was made by building the whole hub space and freezing it, without the trim the '
                 'discarded candidates\' freed memory stayed resident and the subnet\'s forward reused it (its RSS '
                 'grew by half its tensor bytes at batch 32, and our search then measured 2.5x the subnet\'s RSS '
                 'growth with the same tensor peak).')
    notes.append('In an architecture step the gated candidates that did not run forward are evaluated in backward '
                 'without a graph, one at a time (ours, and NNI\'s Proxyless), so their outputs are transient; '
                 'DARTS keeps every candidate\'s activations for its backward.')
    return 'Notes. ' + ' '.join(notes)


def _whole_note(groups: list[dict]) -> str:
    """What our search at every 5 batches holds beside the subnet, at each batch size."""
    name = 'ours: search, arch every 5'
    parts = []
    for g in (g for g in groups if name in g['process_growth_mb']):
        extra = g['process_growth_mb'][name] - g['subnet_process_growth_mb']
        known = (g['resident_mb'][name] - g['subnet_resident_mb']
                 + g['tensor_peak_mb'][name] - g['subnet_tensor_peak_mb'])
        rest = (f'; the other {extra - known:.0f} MB of the difference are outside those tensors, not broken down '
                'here' if extra - known >= 1 else '')
        parts.append(f'at batch {g["batch_size"]} {g["process_growth_mb"][name]:.0f} MB against '
                     f'{g["subnet_process_growth_mb"]:.0f} MB (between steps {g["resident_mb"][name]:.0f} MB of '
                     f'parameters, gradients and optimiser state against {g["subnet_resident_mb"]:.0f} MB; a step\'s '
                     f'tensors {g["tensor_peak_mb"][name]:.0f} MB against {g["subnet_tensor_peak_mb"]:.0f} MB{rest})')
    return ('Whole process, our search at arch_update_every=5 against the subnet, above the baseline: '
            + '; '.join(parts) + '.') if parts else ''


def scaling(r: dict, links: dict) -> str:
    s = r['scaling']
    if not s:
        return ''
    names = list(s['by_candidates'][0]['ratios'])
    rows = [[row['candidates'], f'{row["frozen_step_ms"]:.1f}'] + [fmt_ratio(row['ratios'].get(n)) for n in names]
            for row in s['by_candidates']]
    return '\n\n'.join(filter(None, [
        '## Scaling with the number of candidates',
        f'{s["space"]}, batch {s["batch_size"]}; every candidate costs the same, so every frozen subnet does too. '
        f'Ratios of epoch time to the frozen subnets\' ({s["steps"]} timed batches x {s["rounds"]} rounds per '
        'group; each number of candidates is its own interleaved group). Ours takes an architecture step every 5 '
        'batches ("arch every 5") or none ("weight step only"), NNI\'s strategies one every batch.',
        md_table(['candidates', 'frozen ms/step'] + names, rows), figure_link(links, 'scaling', 'scaling'),
        'ProxylessNAS\'s weight step runs one path whatever the number of candidates; its architecture step runs '
        'two candidates per choice (`two` mode), so the search stays near one path. NNI\'s Proxyless re-runs '
        'every candidate in its backward (to get all gate gradients) and DARTS runs them all forward and backward, '
        'so both grow with the number of candidates.', provenance(s)]))
