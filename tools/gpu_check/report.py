"""Merge the GPU check's steps, test results and benchmark reports into one JSON and a page.

``run.sh`` calls it last, in the environment it set up. Inputs, in ``WORK``: ``steps.tsv``
(name, exit code, seconds, command of each step), ``pytest.xml`` (JUnit XML) and
``bench_*.json`` and ``op_*.json`` (``benchmark.py --json``, with ``--op`` for the latter);
outputs, in ``OUT``: ``gpu_check.json`` and ``gpu_check.md``.

Example::

    python tools/gpu_check/report.py /tmp/gpu_check_work "$OUT"
"""
import argparse
import glob
import json
import os.path as osp
import platform
import xml.etree.ElementTree as ET

import torch

COLUMNS = ('impl', 'form', 'dtype', 'memory_format', 'median_ms', 'min_ms', 'max_ms',
           'images_per_s', 'peak_memory_mib', 'speedup_vs_plain', 'ratio_to_floor')
OP_COLUMNS = ('stage', 'shape', 'dtype', 'direction', 'backend', 'ms', 'gflops', 'peak_fraction',
              'vs_native')


def environment():
    """Versions and the device of this run."""
    env = dict(python=platform.python_version(), torch=torch.__version__,
               cuda=torch.version.cuda, cuda_available=torch.cuda.is_available())
    for name in ('mmengine', 'mmcv', 'numpy', 'cv2'):
        try:
            env[name] = __import__(name).__version__
        except ImportError as error:
            env[name] = f'not importable: {error}'
    if env['cuda_available']:
        env['gpu'] = torch.cuda.get_device_name()
        env['cudnn'] = torch.backends.cudnn.version()
    return env


def read_steps(path):
    """The steps ``run.sh`` ran: name, exit code, seconds and command line."""
    if not osp.exists(path):
        return []
    steps = []
    with open(path) as lines:
        for line in lines:
            name, code, seconds, command = line.rstrip('\n').split('\t', 3)
            steps.append(dict(name=name, exit_code=int(code), seconds=int(seconds),
                              command=command))
    return steps


def read_tests(path):
    """Counts and the non-passing cases of a JUnit XML file; None if there is none."""
    if not osp.exists(path):
        return None
    cases = []
    for case in ET.parse(path).iter('testcase'):
        outcome, message = 'passed', ''
        for tag in ('failure', 'error', 'skipped'):
            found = case.find(tag)
            if found is not None:
                outcome = 'failed' if tag == 'failure' else tag
                message = (found.get('message') or found.text or '').strip()
        cases.append(dict(name=f"{case.get('classname')}::{case.get('name')}", outcome=outcome,
                          seconds=float(case.get('time', 0)), message=message[:2000]))
    counts = {}
    for case in cases:
        counts[case['outcome']] = counts.get(case['outcome'], 0) + 1
    return dict(counts=counts, cases=cases)


def cell(value):
    if value is None:
        return '-'
    return f'{value:.2f}' if isinstance(value, float) else str(value)


def markdown(report):
    """The report as a markdown page."""
    env = report['environment']
    lines = ['# mmslak GPU check', '', ', '.join(f'{k} {v}' for k, v in env.items()), '',
             '| step | exit code | seconds |', '| --- | --- | --- |']
    lines += [f"| {s['name']} | {s['exit_code']} | {s['seconds']} |" for s in report['steps']]
    tests = report['tests']
    lines += ['', '## Tests', '']
    if tests is None:
        lines.append('No test results.')
    else:
        lines.append(', '.join(f'{n} {outcome}' for outcome, n in sorted(tests['counts'].items())))
        lines += [f"- {c['outcome']}: `{c['name']}`: {c['message'].splitlines()[0][:300]}"
                  for c in tests['cases'] if c['outcome'] != 'passed' and c['message']]
    for bench in report['benchmarks']:
        rates = ', '.join(f"{k} {v['best']:.0f}" for k, v in bench['matmul_gflops'].items())
        lines += ['', f"## {bench['model']}, {bench['mode']}, input "
                  f"{'x'.join(map(str, bench['input_shape']))}", '',
                  f"{bench['device']}, torch {bench['torch_version']}, {bench['runs']} runs after "
                  f"{bench['warmup']} warm-up; matmul GFLOP/s: {rates}", '',
                  '| ' + ' | '.join(COLUMNS) + ' |', '|' + ' --- |' * len(COLUMNS)]
        lines += ['| ' + ' | '.join(cell(row[c]) for c in COLUMNS) + ' |' for row in bench['rows']]
    for op in report['ops']:
        lines += ['', f"## SLaK-{op['arch']} depthwise op, batch {op['batch']}, input "
                  f"{op['shape'][0]}x{op['shape'][1]}", '', f"{op['device']}, torch {op['torch']}, "
                  f"fp32 FMA peak {cell(op['peak_tflops'])} TFLOP/s", '',
                  '| ' + ' | '.join(OP_COLUMNS) + ' |', '|' + ' --- |' * len(OP_COLUMNS)]
        lines += ['| ' + ' | '.join(cell(row[c]) for c in OP_COLUMNS) + ' |' for row in op['rows']]
    return '\n'.join(lines) + '\n'


def read_json(pattern):
    """Each JSON file matching ``pattern``, with its file name."""
    reports = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as file:
            reports.append(dict(json.load(file), file=osp.basename(path)))
    return reports


def main():
    parser = argparse.ArgumentParser(description='Merge the GPU check results.')
    parser.add_argument('work', help='folder with steps.tsv, pytest.xml, bench_*.json and '
                        'op_*.json')
    parser.add_argument('out', help='folder for gpu_check.json and gpu_check.md')
    args = parser.parse_args()
    report = dict(environment=environment(), steps=read_steps(osp.join(args.work, 'steps.tsv')),
                  tests=read_tests(osp.join(args.work, 'pytest.xml')),
                  benchmarks=read_json(osp.join(args.work, 'bench_*.json')),
                  ops=read_json(osp.join(args.work, 'op_*.json')))
    with open(osp.join(args.out, 'gpu_check.json'), 'w') as out:
        json.dump(report, out, indent=2)
    with open(osp.join(args.out, 'gpu_check.md'), 'w') as out:
        out.write(markdown(report))
    print(f'report written to {args.out}/gpu_check.json and gpu_check.md')


if __name__ == '__main__':
    main()
