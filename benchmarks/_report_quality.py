"""The search-quality and latency-table sections of docs/benchmarks.md, every number read from the JSON results."""

from __future__ import annotations

from _report_sections import (builds_line, figure_link, fmt_ratio, md_table, provenance, range_line, ratio_at,
                              sample_words)


def planted(r: dict, links: dict) -> str:
    p = r['planted']
    if not p:
        return ''
    n = p['seeds']
    rows = [[name, 'destructive' if 'destructive' in name else 'default', f'{m["exported_planted"]}/{n}',
             f'{m["argmax_planted"]}/{n}',
             f'{m["settled_at_median"]:g} ({min(m["settled_at"])}-{max(m["settled_at"])})',
             f'{m["entropy_fraction"][-1]:.4f}'] for name, m in p['methods'].items()]
    headers = ['method', 'planted space', 'export is planted', 'argmax is planted',
               'argmax settles at epoch: median (range)', 'final entropy / max']
    return '\n\n'.join(filter(None, [
        '## Search quality: planted optimum (digits)',
        f'The tests\' `PlantedSpace` (three residual choices of three candidates; one per choice carries the '
        'signal; the others add nothing or noise, or in the destructive variant cancel the stream). '
        f'{n} seeds x {p["epochs"]} epochs each through `NasExperiment` with the tests\' digits evaluator (Adam 3e-3, '
        'batch 64); ours at arch_update_every=1 and the official arc_learning_rate=1e-3 (REINFORCE with 3e-3; the '
        'default, \'auto\', is measured in the next section), NNI\'s Proxyless at its '
        'defaults (arc_learning_rate=3e-4) and at 1e-3. "Export" is `export_top_models(top_k=1)`; "argmax" '
        'is the most probable value of every label (NNI: read from `export_probs()`). "Settles at" is the first '
        'epoch after which the argmax never changes again (0 = before training). Not a timing.',
        md_table(headers, rows), figure_link(links, 'convergence', 'entropy and argmax over epochs'),
        _planted_notes(p), provenance(p)]))


def _planted_notes(p: dict) -> str:
    methods = p['methods']
    notes = ['NNI\'s `Proxyless` exports a sample from its softmax, so after a search in which its argmax is '
             'right the export is still usually wrong; ours exports the argmax (and exact top-k).',
             'REINFORCE rewards accuracy, and a candidate that adds nothing costs no accuracy: on the default '
             'variant it cannot tell a no-op from the planted layer (the gates\' gradient can), hence the '
             'destructive variant for it.']
    ours, nni = methods.get('ours gradient'), methods.get('NNI Proxyless')
    if ours and nni and nni['settled_at_median'] < ours['settled_at_median']:
        notes.append(f'Behind: NNI\'s argmax settles earlier (median epoch {nni["settled_at_median"]:g} against '
                     f'our {ours["settled_at_median"]:g}). Its architecture step computes every candidate\'s gate '
                     'gradient (it re-runs every candidate in backward), ours in `two` mode estimates it from two '
                     'sampled candidates, which is noisier per step but several times cheaper (see the cost '
                     'table); with `full_v2` we compute all gates too.')
        full = methods.get('ours gradient, full_v2')
        if full:
            notes.append(f'With `full_v2` ours settles at median epoch {full["settled_at_median"]:g}.')
    return 'Notes. ' + ' '.join(notes)


def latency_target(r: dict, links: dict) -> str:
    t = r['latency_target']
    if not t:
        return ''
    rows = [[name, g['count'], f'{g["mflops_mean"]:.3f}', f'{g["within_target"]}/{g["count"]}',
             f'{g["accuracy_mean"]:.4f} ± {g["accuracy_std"]:.4f}'] for name, g in t['groups'].items()]
    penalty = (f' NNI\'s FLOPs penalty (`penalty={{"profiler": FlopsProfiler(...), "baseline": T, ...}}`) crashed on '
               f'this space (`{t["nni_penalty_error"]}`: its FLOPs expression sums an int term, from the `skip` '
               'candidate, with float terms), so NNI\'s Proxyless ran without it. Even where it runs it could not '
               'steer the search: NNI computes it from `export_probs()`, plain floats, so no gradient of it reaches '
               'the architecture parameters.' if t.get('nni_penalty_error') else '')
    return '\n\n'.join(filter(None, [
        '## Search quality: accuracy under a latency target (digits)',
        f'{t["space"]}; {t["seeds"]} search seeds of {t["search_epochs"]} epochs (architecture step every batch). '
        f'Target T = {t["target_mflops"]} MFLOPs, the 25% quantile of the space ({t["architectures_within_target"]}'
        f' of 1000 architectures meet it; the space spans {t["space_mflops"][0]}-{t["space_mflops"][1]} MFLOPs). '
        'Ours with the hard target: `Proxyless(applied_hardware=<FLOPs table>, latency_target=T, '
        'grad_reg_loss_type=None, arch_update_every=1, arc_learning_rate=1e-3)`; ours soft: '
        '`grad_reg_loss_type=\'add#linear\'`, `ref_latency=T`, no hard target. Random: per seed, architectures '
        'within 10% of the hard-target export\'s FLOPs, and architectures drawn uniformly among those within T. '
        'Every architecture is retrained from '
        f'scratch for {t["train_epochs"]} epochs with {t["train_seeds"]} seeds; mean ± std over all (architecture, '
        f'seed) pairs of the test accuracy (497 held-out images). Not a timing.{penalty}',
        md_table(['group', 'architectures', 'mean MFLOPs', 'within target', 'test accuracy'], rows),
        figure_link(links, 'latency_target', 'accuracy against FLOPs'), _target_notes(t), provenance(t)]))


def _target_notes(t: dict) -> str:
    g = t['groups']
    hard, soft, nni = g['ours, latency_target'], g['ours, add#linear'], g['NNI Proxyless']
    within, equal = g['random within target'], g['random, equal FLOPs']
    notes = [f'NNI\'s exports meet the target {nni["within_target"]}/{nni["count"]} times: nothing steers it to '
             'the target and its export is a sample.']
    final = t.get('final_reports', {}).get('ours, latency_target', [])
    expected = [f.get('expected_latency_MFLOPs') for f in final if f.get('expected_latency_MFLOPs') is not None]
    if expected:
        notes.append(f'The hard target does not enter the search (no latency loss here): at the end of those '
                     f'searches the expected FLOPs under the distribution were {min(expected):.3f}-'
                     f'{max(expected):.3f} MFLOPs, and the export is the most probable architecture within T.')
    notes.append(f'Our hard-target exports meet T {hard["within_target"]}/{hard["count"]} times at '
                 f'{hard["mflops_mean"]:.3f} MFLOPs on average and score {hard["accuracy_mean"]:.4f}, against '
                 f'{equal["accuracy_mean"]:.4f} for random architectures of the same FLOPs and '
                 f'{within["accuracy_mean"]:.4f} for random ones within T.')
    if hard['accuracy_mean'] < max(within['accuracy_mean'], equal['accuracy_mean']):
        notes.append('Behind: the search did not beat random architectures under the same constraint here; '
                     'in a search this short the distribution stays close to uniform (Adam moves a logit by about '
                     'arc_learning_rate per step), so the order of the architectures within T is weakly informed.')
    if soft['within_target'] < soft['count']:
        notes.append(f'The soft loss only penalises latency, so {soft["count"] - soft["within_target"]} of its '
                     f'{soft["count"]} exports exceed T ({soft["mflops_mean"]:.3f} MFLOPs on average).')
    if soft['mflops_mean'] < nni['mflops_mean']:
        notes.append(f'It matches NNI\'s accuracy ({soft["accuracy_mean"]:.4f} against {nni["accuracy_mean"]:.4f}) '
                     f'with {1 - soft["mflops_mean"] / nni["mflops_mean"]:.0%} fewer FLOPs.')
    return 'Notes. ' + ' '.join(notes)


def modes(r: dict, links: dict) -> str:
    m, p, c = r['modes'], r['planted'], r['cost']
    if not m:
        return ''
    rows = []
    for mode in ('gradient', 'REINFORCE'):
        hub = ' / '.join(fmt_ratio(ratio_at(c, b, 'ours: search, arch every 5' if mode == 'gradient' else
                                   'ours: REINFORCE, every 5')) for b in (32, 128))
        quality = [p['methods'].get(name, {}).get('exported_planted', '-') if p else '-'
                   for name in (f'ours {mode}', f'ours {mode}, destructive')]
        every = [fmt_ratio(m['ratios'].get(f'ours {mode}, every {n}')) for n in (1, 5)]
        rows.append([mode, *every,
                     hub, f'{quality[0]}/{p["seeds"] if p else "-"}', f'{quality[1]}/{p["seeds"] if p else "-"}'])
    headers = ['architecture update', 'planted: epoch time, every 1', 'planted: every 5',
               'hub: every 5, batch 32 / 128', 'planted exported (default)', 'planted exported (destructive)']
    return '\n\n'.join(filter(None, [
        '## REINFORCE against binary-gate gradients',
        f'Cost: {m["space"]}, ratios of epoch time to the frozen planted subnet ({m["frozen_epoch_ms"]:.1f} ms per '
        f'epoch; {m["steps"]} timed batches x {m["rounds"]} rounds; NNI\'s Proxyless '
        f'{fmt_ratio(m["ratios"].get("NNI Proxyless"))}), '
        'and the hub space\'s ratios from the cost table. Quality: the planted-optimum runs above.',
        md_table(headers, rows), figure_link(links, 'modes', 'REINFORCE against gradient'),
        'Gradient updates read the gates\' gradients, which see what each candidate contributes to the loss; '
        'REINFORCE sees only the reward (accuracy) of whole sampled architectures: 10 forward passes per update '
        'and no backward through the network, a noisier signal that cannot separate candidates of equal accuracy '
        '(the default planted variant). It is the mode for non-differentiable rewards, such as a latency measured '
        'on the device.', provenance(m)]))


def latency_tables(r: dict, links: dict) -> str:
    a = r['latency_accuracy']
    if not a:
        return ''
    accuracy = md_table(['architectures', 'within 10%', 'median error', 'largest error', 'Spearman'],
                      [[a['archs'], f'{a["within_10_percent"]:.0%}', f'{a["median_abs_error"]:.1%}',
                        f'{a["max_abs_error"]:.1%}', f'{a["spearman"]:.3f}']])
    builds = a['build_seconds']
    configs = list(builds['cpu'])
    build_rows = [[kind] + [f'{builds[kind].get(cfg, "-")} s' for cfg in configs] for kind in ('cpu', 'flops')]
    nn = builds['nn-Meter']
    if 'skipped' not in nn:
        build_rows.append(['nn-Meter (fixture)'] + [f'{nn[cfg]["build_seconds"]} s' if cfg in nn else '-'
                                                    for cfg in configs])
    return '\n\n'.join(filter(None, [
        '## Latency tables',
        f'Accuracy of a `cpu` table: {a["space"]}; {sample_words(a)}, each frozen subnet\'s '
        'end-to-end latency measured by the package\'s `cpu` predictor (median of repeats; cache off), round-robin, '
        f'median of {a.get("rounds", 3)} rounds, against the table\'s prediction (fixed part plus the chosen '
        'candidates). The table is calibrated on whole-network timings of 11 architectures (docs/latency.md, '
        '`build_latency_table` step 4); without that step the large architectures measured up to 15% above the '
        'table (84% within 10% in one full run), since a module timed alone on warm caches runs faster than inside '
        'the network. What remains between runs is mostly a uniform shift of a few percent: the machine\'s speed '
        'when the table was built against when the subnets were timed.',
        accuracy + builds_line(a) + range_line(a), figure_link(links, 'latency_accuracy', 'predicted against measured latency'),
        'Table build times (hub ProxylessNAS; `cpu` with an empty cache, 1 thread):',
        md_table(['predictor'] + configs, build_rows), _nnmeter(nn), provenance(a)]))


def _nnmeter(nn: dict) -> str:
    if 'skipped' in nn:
        return f'nn-Meter: skipped ({nn["skipped"]}).'
    rows = [[cfg, v['calls'], v['kernels'], f'{v["predict_seconds"]} s', v['kernels_per_second'],
             v['forest_kernels_per_second'] or '-'] for cfg, v in nn.items()]
    return ('nn-Meter `cortexA76cpu_tflite21` from the tests\' predictor folder (`nnmeter_legacy_predictor`: '
            'nn-Meter\'s real legacy file format, scikit-learn 0.23.1 pickles read by our allow-listed loader, but '
            'synthetic forests of 6 small trees; nn-Meter\'s real forests are far larger, so expect lower forest '
            'throughput with them). Batched prediction on the calls of one table build: kernels per second through '
            '`predict` (each call decomposed into kernels with one forward, then one forest call per kernel type) '
            'and through the forests alone.\n\n'
            + md_table(['space', 'calls', 'kernels', 'predict time', 'kernels/s (predict)', 'kernels/s (forests)'],
                     rows))
