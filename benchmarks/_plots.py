"""The PNG figures of docs/benchmarks.md, one function per figure, each from one script's JSON result."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

OURS, REINFORCE, NNI, DARTS, OTHER = '#1f77b4', '#ff7f0e', '#d62728', '#9467bd', '#7f7f7f'


def colour(name: str) -> str:
    """Ours blue (REINFORCE orange), NNI's Proxyless red, DARTS purple, the rest grey."""
    if name.startswith('ours'):
        return REINFORCE if 'REINFORCE' in name else OURS
    if 'DARTS' in name:
        return DARTS
    return NNI if 'NNI' in name else OTHER


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def ratio_bars(groups: list[dict], key: str, title: str, xlabel: str, path: Path,
               targets: dict[str, float] | None = None) -> Path:
    """Horizontal bars of ``group[key]`` ratios, one panel per batch size, log scale, target lines."""
    figure, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 0.45 * len(groups[0][key]) + 1.6),
                                squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        names = list(group[key])
        values = [group[key][n] for n in names]
        ax.barh(range(len(names)), values, color=[colour(n) for n in names])
        for i, value in enumerate(values):
            ax.text(value * 1.03, i, f'{value:.2f}x', va='center', fontsize=8)
        ax.axvline(1.0, color='black', linewidth=0.8)
        for label, x in (targets or {}).items():
            ax.axvline(x, color='green', linestyle='--', linewidth=0.8)
            ax.text(x, -0.55, label, color='green', fontsize=7, rotation=90, va='bottom', ha='center')
        _log_ratio_axis(ax.xaxis)
        ax.set_xlim(0.7, max(values) * 1.6)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f'batch {group["batch_size"]}', fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def memory_bars(groups: list[dict], path: Path) -> Path:
    """Per batch size: each contender's whole-process peak ratio (dotted, where measured), live-tensor peak ratio
    of a step (solid) and RSS growth ratio of a step (hatched)."""
    whole = all('process_ratios' in g for g in groups)
    bars = ((('process_ratios', '..'),) if whole else ()) + (('tensor_ratios', None), ('ratios', '//'))
    height = 0.8 / len(bars)
    figure, axes = plt.subplots(1, len(groups), figsize=(max(8.0, 5.6 * len(groups)),
                                                         0.2 * len(bars) * len(groups[0]['ratios']) + 1.8),
                                squeeze=False, sharey=True)
    for ax, group in zip(axes[0], groups):
        names = list(group['ratios'])
        for k, (key, hatch) in enumerate(bars):
            offset = (k - (len(bars) - 1) / 2) * height
            values = [group[key].get(n) or 0 for n in names]
            ax.barh([i + offset for i in range(len(names))], values, height=height * 0.95, hatch=hatch,
                    color=[colour(n) for n in names], edgecolor='white' if hatch else None)
            for i, value in enumerate(values):
                ax.text(value * 1.03, i + offset, f'{value:.2f}x', va='center', fontsize=7)
        ax.axvline(1.0, color='black', linewidth=0.8)
        ax.axvline(1.3, color='green', linestyle='--', linewidth=0.8)
        _log_ratio_axis(ax.xaxis)
        ax.set_xlim(0.7, max(v or 0 for key, _ in bars for v in group[key].values()) * 1.7)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f'batch {group["batch_size"]}: ' + ('whole process (dotted), ' if whole else '')
                     + 'a step\'s torch allocations (solid) and RSS (hatched), target 1.3x (green)', fontsize=8)
    figure.suptitle('Peak memory of a search / training the frozen subnet alone on the same path', fontsize=10)
    return _save(figure, path)


def _log_ratio_axis(axis) -> None:
    """A log axis labelled 1x, 2x, 5x, 10x, ... instead of powers of ten."""
    if axis.axis_name == 'x':
        axis.axes.set_xscale('log')
    else:
        axis.axes.set_yscale('log')
    axis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}x'))
    axis.set_minor_formatter(NullFormatter())
    axis.set_ticks([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100)])


def scaling_lines(result: dict, path: Path) -> Path:
    """Step-time ratio against candidates per choice, one line per contender."""
    rows = result['by_candidates']
    counts = [row['candidates'] for row in rows]
    figure, ax = plt.subplots(figsize=(6, 4))
    for name in rows[0]['ratios']:
        values = [row['ratios'][name] for row in rows]
        ax.plot(counts, values, marker='o', color=colour(name), label=name,
                linestyle='--' if 'weight step only' in name else '-')
    ax.set_xscale('log', base=2)
    _log_ratio_axis(ax.yaxis)
    ax.set_ylim(0.7, max(max(row['ratios'].values()) for row in rows) * 1.4)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel('candidates per choice (4 choices)')
    ax.set_ylabel('epoch time / frozen subnet epoch time')
    ax.axhline(1.0, color='black', linewidth=0.8)
    ax.legend(fontsize=8)
    ax.set_title('Search cost against the number of candidates (ScalingSpace, batch %d)' % result['batch_size'],
                 fontsize=9)
    return _save(figure, path)


def convergence(result: dict, path: Path) -> Path:
    """Entropy (fraction of its maximum) and seeds whose most probable architecture is the planted one."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    styles = ['-', '--', ':', '-.']
    for i, (name, summary) in enumerate(result['methods'].items()):
        epochs = np.arange(len(summary['entropy_fraction']))
        style = dict(color=colour(name), linestyle=styles[i % len(styles)], marker='.', label=name)
        left.plot(epochs, summary['entropy_fraction'], **style)
        right.plot(epochs, summary['argmax_planted_fraction'], **style)
    left.set_title('architecture entropy / maximum (mean over seeds)', fontsize=9)
    right.set_title('seeds whose most probable architecture is the planted one', fontsize=9)
    right.set_ylim(-0.05, 1.05)
    for ax in (left, right):
        ax.set_xlabel('epoch (0: before training)')
    right.legend(fontsize=7)
    figure.suptitle(f'Planted-optimum search on digits, {result["seeds"]} seeds', fontsize=10)
    return _save(figure, path)


def latency_target(result: dict, path: Path) -> Path:
    """Test accuracy against MFLOPs for every retrained architecture, with the target."""
    figure, ax = plt.subplots(figsize=(6.5, 4))
    styles = {'ours, latency_target': ('o', OURS), 'ours, add#linear': ('^', '#17becf'),
              'NNI Proxyless': ('s', NNI), 'random, equal FLOPs': ('x', OTHER), 'random within target': ('+', 'black')}
    for name, group in result['groups'].items():
        xs = [a['mflops'] for a in group['architectures'] for _ in a['test_accuracy']]
        ys = [acc for a in group['architectures'] for acc in a['test_accuracy']]
        marker, color = styles.get(name, ('.', OTHER))
        ax.scatter(xs, ys, marker=marker, color=color, alpha=0.8,
                   label=f'{name}: {group["accuracy_mean"]:.3f} ± {group["accuracy_std"]:.3f}')
    ax.set_xscale('log')
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f'{value:g}'))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(result['target_mflops'], color='green', linestyle='--', label='latency target')
    ax.set_xlabel('MFLOPs (the latency proxy), log scale')
    ax.set_ylabel('test accuracy after retraining')
    ax.legend(fontsize=8)
    ax.set_title('Exported architectures under a latency target (digits)', fontsize=9)
    return _save(figure, path)


def latency_scatter(result: dict, path: Path) -> Path:
    """Predicted against measured latency of random architectures, with the 10% band."""
    measured, predicted = result['measured_ms'], result['predicted_ms']
    figure, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(measured, predicted, color=OURS)
    line = np.linspace(min(measured) * 0.9, max(measured) * 1.1, 10)
    ax.plot(line, line, color='black', linewidth=0.8)
    ax.fill_between(line, line * 0.9, line * 1.1, color='green', alpha=0.15, label='within 10%')
    ax.set_xlabel('measured end-to-end latency (ms)')
    ax.set_ylabel("'cpu' table prediction (ms)")
    ax.legend(fontsize=8)
    ax.set_title(result['space'], fontsize=9)
    return _save(figure, path)


def modes(modes_result: dict, planted_result: dict, path: Path) -> Path:
    """REINFORCE against gradient: cost ratio per epoch, and planted optimum exported per space variant."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(modes_result['ratios'])
    left.barh(range(len(names)), [modes_result['ratios'][n] for n in names], color=[colour(n) for n in names])
    left.set_yticks(range(len(names)), names, fontsize=8)
    left.invert_yaxis()
    left.axvline(1.0, color='black', linewidth=0.8)
    left.set_xlabel('epoch time / frozen planted subnet', fontsize=8)
    methods = planted_result['methods']
    shown = [n for n in methods if n.startswith('ours')]
    counts = [methods[n]['exported_planted'] for n in shown]
    right.barh(range(len(shown)), counts, color=[colour(n) for n in shown])
    for i, count in enumerate(counts):
        right.text(count + 0.1, i, str(count), va='center', fontsize=8)
    right.set_yticks(range(len(shown)), shown, fontsize=8)
    right.invert_yaxis()
    right.set_xlim(0, planted_result['seeds'])
    right.set_xlabel(f'planted optimum exported (of {planted_result["seeds"]} seeds)', fontsize=8)
    figure.suptitle('REINFORCE against binary-gate gradients on the planted digits space', fontsize=10)
    return _save(figure, path)


# name -> (colour, marker, line style); the variants of ours open, so that ours default shows through where they
# coincide (it is drawn last)
_TRUTH_STYLES = {'ours default': (OURS, 'o', '-'), 'ours default, top-10 re-ranked': (OURS, 'x', ':'),
                 'ours 1e-3': ('#8c564b', 's', '--'), 'ours budget rule': ('#2ca02c', 'P', '--'),
                 'ours full_v2': ('#17becf', 'D', '-'), 'ours REINFORCE': (REINFORCE, '^', '-'),
                 'NNI Proxyless': (NNI, 's', '-'), 'NNI DARTS': (DARTS, 'v', '-')}


def truth_ranks(truth: dict, seeds: int, title: str, path: Path) -> Path:
    """Median true rank of each searcher's export against the budget (dots: each seed), and random search at
    the cost of ours default under both protocols; log axes, rank 1 at the top."""
    figure, ax = plt.subplots(figsize=(7.5, 4.8))
    budgets = list(truth['budgets'])
    xs = [int(e) for e in budgets]
    names = [n for n in dict.fromkeys(n for b in truth['budgets'].values() for n in b)
             if all('rank_median' in truth['budgets'][e].get(n, {}) for e in budgets)]
    order = {name: i for i, name in enumerate(names)}  # the legend's; ours default drawn last
    names.sort(key=lambda name: name == 'ours default')
    for i, name in enumerate(names):
        color, marker, style = _TRUTH_STYLES.get(name, (colour(name), 'o', '-'))
        summaries = [truth['budgets'][e][name] for e in budgets]
        face = 'none' if name in ('ours full_v2', 'ours budget rule', 'ours 1e-3') else color
        ax.plot(xs, [m['rank_median'] for m in summaries], color=color, marker=marker, linestyle=style,
                markerfacecolor=face, markersize=9 if face == 'none' else 6, label=name, zorder=2 + i)
        shift = 1 + 0.025 * (i - len(names) / 2)  # seeds' dots side by side, not on top of each other
        ax.scatter([x * shift for x, m in zip(xs, summaries) for _ in m['ranks']],
                   [r for m in summaries for r in m['ranks']], marker=marker, s=10, color=color, alpha=0.3)
    ours = [truth['budgets'][e].get('ours default', {}) for e in budgets]
    if all('random' in m for m in ours):
        for protocol in sorted(ours[0]['random'], key=int):
            style = '-' if int(protocol) < truth['truth']['epochs'] else '--'
            ax.plot(xs, [m['random'][protocol]['rank_median'] for m in ours], color=OTHER, linestyle=style,
                    linewidth=2, alpha=0.6, label=f'random search at our cost, {protocol}-epoch training')
    count = truth['truth']['architectures']
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_ylim(count * 1.1, 0.9)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks([1, 2, 5, 10, 20, 50, 100], ['1', '2', '5', '10', '20', '50', '100'])
    ax.axhline(10, color='green', linestyle=':', linewidth=0.8)
    ax.set_xlabel('search budget (epochs)')
    ax.set_ylabel(f'true rank of the export (of {count}; 1 = best)')
    handles, labels = ax.get_legend_handles_labels()
    shown = sorted(zip(handles, labels), key=lambda pair: order.get(pair[1], len(order)))
    ax.legend(*zip(*shown), fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    ax.set_title(f'{title}, median of {seeds} seeds\n(dots: each seed; dotted green: the true top 10)', fontsize=9)
    return _save(figure, path)


def front_picks(result: dict, path: Path) -> Path:
    """True accuracy of each method's pick against the latency budget, one panel per search budget: the median
    over seeds (line), each seed (dots), the best qualifying architecture, and random search at the front's total
    compute (5 candidates, or its largest count) under both of the truth's protocols."""
    epochs = list(result['budgets'])
    figure, axes = plt.subplots(1, len(epochs), figsize=(4.6 * len(epochs) + 2.2, 4.2), squeeze=False, sharey=True)
    methods = result['methods']
    styles = {method: (color, marker) for method, color, marker in
              zip(methods, [OURS, '#2ca02c', '#17becf', '#bcbd22', '#9467bd'], 'oDs^v')}
    styles['one search per budget'] = ('#8c564b', 'x')
    fronts = [m for m in methods if m.startswith('front')]
    reference = 'front, 5 candidates' if 'front, 5 candidates' in fronts else fronts[-1]
    for ax, e in zip(axes[0], epochs):
        cells = result['budgets'][e]
        xs = [cell['budget_mflops'] for cell in cells]
        ax.plot(xs, [cell['best_qualifying'] for cell in cells], color='black', linestyle=':', linewidth=1,
                label='best qualifying architecture')
        for protocol in sorted(cells[0]['methods'][reference]['random'], key=int):
            random = [cell['methods'][reference]['random'][protocol]['true_accuracy_median'] for cell in cells]
            ax.plot(xs, random, color=OTHER, linewidth=2, alpha=0.6,
                    linestyle='-' if int(protocol) < result['full_epochs'] else '--',
                    label=f'random search at the total compute of "{reference}",\n{protocol}-epoch training')
        for i, method in enumerate(methods):
            color, marker = styles[method]
            shift = 1 + 0.04 * (i - (len(methods) - 1) / 2)  # side by side, not on top of each other
            summaries = [cell['methods'][method] for cell in cells]
            ax.plot([x * shift for x in xs], [np.median([r['true_accuracy'] for r in m['runs']]) for m in summaries],
                    color=color, marker=marker, label=method)
            ax.scatter([x * shift for x, m in zip(xs, summaries) for _ in m['runs']],
                       [r['true_accuracy'] for m in summaries for r in m['runs']], color=color, marker=marker, s=12,
                       alpha=0.35)
        ax.set_xscale('log')
        ax.set_xticks(xs, [f'{x:.3g}' for x in xs])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel('latency budget (MFLOPs), log scale')
        ax.set_title(f'{e}-epoch searches', fontsize=9)
    axes[0][0].set_ylabel('true accuracy of the pick')
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][-1].legend(handles, labels, fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    figure.suptitle(f'One search, several budgets: picks against the value truth\n{result["seeds"]} seeds (line: '
                    'median; dots: each seed)', fontsize=10)
    return _save(figure, path)
