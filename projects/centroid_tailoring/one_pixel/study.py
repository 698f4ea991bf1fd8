"""Statistics and report of a one-pixel robustness study: two heads, several training seeds.

Each run (a head trained with one seed) gives a row: its test accuracy and its attack's success
count. Per head the runs are pooled over seeds (counts summed, accuracy averaged), and the two
heads are compared by Fisher's exact test on the pooled 2 x 2 table of flipped and unflipped
targets, with the number of targets a powered comparison would need.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import fisher_exact

from .stats import targets_for_power, wilson_interval

# Tried in this order when no metric is named: mmseg, mmdet on VOC, mmdet on COCO.
DEFAULT_METRICS = ('mIoU', 'pascal_voc/mAP', 'coco/bbox_mAP')
# The difference the power statement is about: a 2x success rate, two-sided alpha 0.05, 80%.
RATIO, ALPHA, POWER = 2.0, 0.05, 0.8


def pick_metric(metrics: dict, name: Optional[str] = None) -> str:
    """The accuracy metric of a run: ``name``, else the first of :data:`DEFAULT_METRICS` present.

    Args:
        metrics (dict): Test metrics of the run, e.g. ``{'aAcc': 98.3, 'mIoU': 96.1}``.
        name (str, optional): The metric to use. Defaults to the first default one present.

    Returns:
        str: The metric's key in ``metrics``.

    Raises:
        KeyError: If the metric is missing; the message lists those present.
    """
    wanted = (name, ) if name else DEFAULT_METRICS
    for key in wanted:
        if key in metrics:
            return key
    raise KeyError(f"no test metric {' or '.join(wanted)}; the metrics present are "
                   f"{', '.join(sorted(metrics)) or 'none'}")


def run_row(summary: dict, metrics: dict, seed: int, metric: Optional[str] = None) -> dict:
    """The row of one run: its accuracy and its attack's success.

    Args:
        summary (dict): The attack summary of the run (the project's ``tools/attack.py --out``).
        metrics (dict): The test metrics of the run.
        seed (int): The training seed of the run (the summary's ``seed`` is the attack's).
        metric (str, optional): The accuracy metric. Defaults to :func:`pick_metric`'s choice.

    Returns:
        dict: ``label``, ``seed``, ``attack_seed``, ``method``, ``max_budget``, ``metric``,
        ``accuracy``, ``targets``, ``successes``, ``rate``, ``ci95`` (Wilson) and
        ``mean_evaluations`` (per flip; ``None`` without a flip) and ``attack`` (the attack's
        settings, images and targets per image, boundary width).
    """
    key = pick_metric(metrics, metric)
    targets, successes = summary['num_targets'], summary['num_successes']
    return dict(
        label=summary['label'], seed=seed, attack_seed=summary['seed'], method=summary['method'],
        max_budget=summary['max_budget'], metric=key, accuracy=float(metrics[key]),
        targets=targets, successes=successes, rate=successes / targets,
        ci95=list(wilson_interval(successes, targets)),
        mean_evaluations=summary['mean_evaluations_to_success'],
        attack=dict(summary['settings'], images=summary['num_images'],
                    targets_per_image=summary['targets_per_image'],
                    boundary_width=summary['boundary_width']))


def pool_label(rows: Sequence[dict]) -> dict:
    """Pool the runs of one head over its seeds.

    Args:
        rows (Sequence[dict]): :func:`run_row` rows of one label, one per seed.

    Returns:
        dict: ``label``, ``seeds``, ``metric``, ``accuracy_mean``, ``accuracy_std`` (sample
        standard deviation over seeds; ``None`` with one seed), ``targets`` and ``successes``
        (summed), ``rate``, ``ci95`` (Wilson, of the pooled counts) and ``mean_evaluations``
        (over all flips of all seeds; ``None`` without a flip).

    Raises:
        ValueError: If the rows mix labels or accuracy metrics.
    """
    for key in ('label', 'metric'):
        if len({row[key] for row in rows}) != 1:
            raise ValueError(f"cannot pool runs with different {key}s: "
                             f"{sorted({row[key] for row in rows})}")
    accuracies = [row['accuracy'] for row in rows]
    targets = sum(row['targets'] for row in rows)
    successes = sum(row['successes'] for row in rows)
    # a run's mean times its flips is the sum of its evaluations to a flip
    spent = sum(row['mean_evaluations'] * row['successes'] for row in rows if row['successes'])
    return dict(
        label=rows[0]['label'], seeds=[row['seed'] for row in rows], metric=rows[0]['metric'],
        accuracy_mean=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies, ddof=1)) if len(rows) > 1 else None,
        targets=targets, successes=successes, rate=successes / targets,
        ci95=list(wilson_interval(successes, targets)),
        mean_evaluations=spent / successes if successes else None)


def pool_rows(rows: Sequence[dict]) -> Dict[str, dict]:
    """Pool the runs of every head over its seeds.

    Args:
        rows (Sequence[dict]): :func:`run_row` rows of all runs.

    Returns:
        dict[str, dict]: Per label, in the order labels first appear, :func:`pool_label`'s
        result.
    """
    labels = list(dict.fromkeys(row['label'] for row in rows))
    return {label: pool_label([row for row in rows if row['label'] == label]) for label in labels}


def power_analysis(first: dict, second: dict) -> dict:
    """Targets per head for a powered comparison (a 2x rate, alpha 0.05, power 0.8).

    The sample size is :func:`targets_for_power` at the smaller pooled rate. A smaller rate of
    0 cannot be used: twice 0 is 0, so no 2x difference can be powered at the observed rate.
    The rate is then the upper end of that head's 95% Wilson interval, the largest rate the
    data leave plausible, which gives the fewest targets that could suffice (a smaller true rate
    needs more). When twice the rate exceeds 1, no 2x difference exists to detect.

    Args:
        first (dict): :func:`pool_label` result of one head.
        second (dict): :func:`pool_label` result of the other head.

    Returns:
        dict: ``ratio``, ``alpha``, ``power``; ``label`` of the head with the smaller rate (on a
        tie, the one with the smaller upper bound), ``basis`` (``'observed'`` or
        ``'upper_bound'``), ``rate`` used, ``targets_needed`` (``None`` when no 2x difference
        exists), ``targets`` (per label, its pooled targets) and ``reached`` (per label,
        whether those reach the need; ``None`` with ``targets_needed``).
    """
    smaller = min(first, second, key=lambda pooled: (pooled['rate'], pooled['ci95'][1]))
    basis = 'observed' if smaller['rate'] > 0 else 'upper_bound'
    rate = smaller['rate'] if basis == 'observed' else smaller['ci95'][1]
    needed = targets_for_power(rate, RATIO, ALPHA, POWER) if RATIO * rate <= 1 else None
    targets = {pooled['label']: pooled['targets'] for pooled in (first, second)}
    reached = None if needed is None else {label: n >= needed for label, n in targets.items()}
    return dict(ratio=RATIO, alpha=ALPHA, power=POWER, label=smaller['label'], basis=basis,
                rate=rate, targets_needed=needed, targets=targets, reached=reached)


def compare(first: dict, second: dict) -> dict:
    """Compare the pooled success of two heads.

    Args:
        first (dict): :func:`pool_label` result of the reference head (e.g. softmax).
        second (dict): :func:`pool_label` result of the other head (e.g. Gauss).

    Returns:
        dict: ``labels`` (first, second), ``table`` (rows: heads; columns: flipped, not
        flipped), ``p_value`` (Fisher's exact test, two-sided), ``rate_ratio`` (second's rate
        over first's; ``None`` when first's is 0) and ``power`` (:func:`power_analysis`).
    """
    table = [[pooled['successes'], pooled['targets'] - pooled['successes']]
             for pooled in (first, second)]
    p_value = float(fisher_exact(table, alternative='two-sided')[1])
    ratio = second['rate'] / first['rate'] if first['rate'] else None
    return dict(labels=[first['label'], second['label']], table=table, p_value=p_value,
                rate_ratio=ratio, power=power_analysis(first, second))


def _percent(rate: float) -> str:
    """A rate as a percentage.

    Args:
        rate (float): A rate in ``[0, 1]``.

    Returns:
        str: E.g. ``'12.5%'``.
    """
    return f'{100 * rate:.1f}%'


def _attack_cells(entry: dict) -> List[str]:
    """The attack columns of a run or of a pooled head.

    Args:
        entry (dict): A :func:`run_row` or :func:`pool_label` result.

    Returns:
        list[str]: Success ``k / n``, rate, 95% interval and evaluations per flip.
    """
    low, high = entry['ci95']
    mean = entry['mean_evaluations']
    return [
        f"{entry['successes']} / {entry['targets']}",
        _percent(entry['rate']), f'[{_percent(low)}, {_percent(high)}]',
        '-' if mean is None else f'{mean:.1f}'
    ]


def _pooled_accuracy(pooled: dict) -> str:
    """The accuracy of a pooled head: metric, mean and, over several seeds, sample std.

    Args:
        pooled (dict): A :func:`pool_label` result.

    Returns:
        str: E.g. ``'mIoU 96.1 ± 0.2'``.
    """
    spread = '' if pooled['accuracy_std'] is None else f" ± {pooled['accuracy_std']:.3g}"
    return f"{pooled['metric']} {pooled['accuracy_mean']:.4g}{spread}"


def _markdown_table(header: Sequence[str], lines: Sequence[Sequence]) -> List[str]:
    """A Markdown table.

    Args:
        header (Sequence[str]): Column names.
        lines (Sequence[Sequence]): Rows of cells.

    Returns:
        list[str]: The table's lines.
    """
    rows = [header, ['---'] * len(header), *lines]
    return ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]


def power_statement(comparison: dict) -> str:
    """The power analysis of a comparison in words.

    Args:
        comparison (dict): :func:`compare`'s result.

    Returns:
        str: One paragraph.
    """
    power = comparison['power']
    difference = f"a {power['ratio']:g}x difference in success rate"
    if power['basis'] == 'observed':
        lead = 'Power: at the smaller observed pooled rate'
        where = f"{_percent(power['rate'])} ({power['label']})"
    else:
        lead = (f"Power: {power['label']}'s pooled rate is 0, and twice 0 is 0, so no "
                f"{power['ratio']:g}x difference can be powered at the observed rate. At the upper "
                'end of its 95% interval')
        where = _percent(power['rate'])
    if power['targets_needed'] is None:
        consequence = ('there is none to detect' if power['basis'] == 'observed' else
                       'the interval is too wide to size the study; attack more targets')
        return f'{lead}, {where}, {difference} would exceed 100%: {consequence}.'
    caveat = ('' if power['basis'] == 'observed' else
              ', the fewest that could suffice (a smaller true rate needs more)')
    counts = ', '.join(f"{label} has {power['targets'][label]} ({'enough' if ok else 'too few'})"
                       for label, ok in power['reached'].items())
    return (f"{lead}, {where}, detecting {difference} (two-sided alpha {power['alpha']:g}, power "
            f"{100 * power['power']:.0f}%) needs {power['targets_needed']} targets per "
            f'head{caveat}; {counts}.')


def _settings_line(rows: Sequence[dict]) -> str:
    """The attack settings of the runs, each with the values the runs used.

    Args:
        rows (Sequence[dict]): :func:`run_row` rows.

    Returns:
        str: E.g. ``'Attack: method de, budget per target 200, attack seed 0, popsize 20,
        maxiter 9.'`` (settings that are None left out).
    """
    settings = (('method', 'method'), ('budget per target', 'max_budget'),
                ('attack seed', 'attack_seed'))
    values = [(name, {row[key] for row in rows}) for name, key in settings]
    for key in sorted({key for row in rows for key in row['attack']}):
        values.append((key.replace('_', ' '), {row['attack'].get(key) for row in rows}))
    return 'Attack: ' + ', '.join(
        f"{name} {', '.join(str(value) for value in sorted(found, key=str))}"
        for name, found in values if found != {None}) + '.'


def format_report(rows: Sequence[dict], pooled: Dict[str, dict], comparison: dict) -> str:
    """The study as Markdown: runs, heads pooled over seeds, and the comparison.

    Args:
        rows (Sequence[dict]): :func:`run_row` rows.
        pooled (dict[str, dict]): :func:`pool_rows`'s result.
        comparison (dict): :func:`compare`'s result.

    Returns:
        str: The report.
    """
    attack = ('attack success', 'rate', '95% interval', 'evaluations per flip')
    runs = _markdown_table(('head', 'seed', 'accuracy', *attack),
                           [[row['label'], row['seed'], f"{row['metric']} {row['accuracy']:.4g}",
                             *_attack_cells(row)] for row in rows])
    heads = _markdown_table(('head', 'seeds', 'accuracy (mean ± sd)', *attack),
                            [[head['label'], ', '.join(str(seed) for seed in head['seeds']),
                              _pooled_accuracy(head), *_attack_cells(head)]
                             for head in pooled.values()])
    first, second = comparison['labels']
    ratio = (f"undefined ({first}'s rate is 0)" if comparison['rate_ratio'] is None else
             f"{comparison['rate_ratio']:.3g}")
    (flipped_first, kept_first), (flipped_second, kept_second) = comparison['table']
    return '\n'.join([
        '# One-pixel robustness study', '', _settings_line(rows), '', '## Runs', '', *runs, '',
        '## Pooled over seeds', '', *heads, '', f'## {second} against {first}', '',
        f"- Fisher's exact test (two-sided) on the pooled targets flipped, "
        f'{flipped_first} / {flipped_first + kept_first} ({first}) against '
        f'{flipped_second} / {flipped_second + kept_second} ({second}): '
        f"p = {comparison['p_value']:.3g}.", f'- Rate ratio {second} / {first}: {ratio}.',
        f'- {power_statement(comparison)}', ''
    ])
