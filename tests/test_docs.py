"""The documentation: README.md stays short and its links resolve; docs/en builds with no warning.

The build is `make docs`'s (and .readthedocs.yaml's): Sphinx with myst-parser, nitpicky for
mmslak's own objects, warnings as errors, so a broken internal link, a missing image or a
reference to an mmslak object that does not exist fails it. The lock stack installs the docs
extra; the legacy and forks stacks do not, and skip the builds.
"""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = osp.join(ROOT, 'docs', 'en')
STACK = os.environ.get('MMSLAK_STACK', 'lock')
README = osp.join(ROOT, 'README.md')
# [text](target), not images' alt text nor code spans; external links are not followed offline.
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _has_sphinx():
    return all(importlib.util.find_spec(name) for name in ('sphinx', 'myst_parser'))


def _needs_sphinx():
    if _has_sphinx():
        return
    if STACK == 'lock':
        pytest.fail('sphinx and myst-parser are missing: the lock stack installs them with the '
                    'docs extra (make setup)')
    pytest.skip(f'the {STACK} stack does not install the docs extra (sphinx, myst-parser)')


def _sphinx_build(src, out, conf_dir=DOCS):
    run = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-n', '-q', '-b', 'html',
         '-c', conf_dir, '-d', osp.join(str(out), '.doctrees'), src, str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    return run.returncode, run.stdout + run.stderr


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = open(README).read().splitlines()
    assert len(lines) <= 200, len(lines)
    commands = [line.split('#')[0].strip() for line in lines[:8] if line.startswith('make ')]
    assert commands == ['make demo', 'make test']


def test_every_readme_link_resolves():
    text = open(README).read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    targets = [t for t in LINK.findall(text) if not re.match(r'[a-z]+:', t)]
    assert targets
    for target in targets:
        path, _, anchor = target.partition('#')
        assert osp.exists(osp.join(ROOT, path)), target
        if anchor and path.endswith('.md'):
            headings = [_anchor(line.lstrip('#').strip())
                        for line in open(osp.join(ROOT, path)) if line.startswith('#')]
            assert anchor in headings, target


def _anchor(heading):
    """The id myst-parser (and GitHub) give a heading: lower case, punctuation dropped."""
    heading = re.sub(r'[^\w\- ]', '', heading.lower())
    return heading.replace(' ', '-')


def test_docs_build_with_no_warning(tmp_path):
    _needs_sphinx()
    returncode, output = _sphinx_build(DOCS, tmp_path / 'html')
    assert returncode == 0, output
    api = (tmp_path / 'html' / 'api.html').read_text()
    assert 'id="mmslak.models.SLaK"' in api  # the backbone's API entry, from its docstring
    for page in ('get_started', 'user_guides/train_test', 'advanced_guides/op_backends',
                 'notes/benchmarks', 'notes/faq'):
        assert (tmp_path / 'html' / f'{page}.html').is_file(), page


def test_docs_build_fails_on_broken_links_images_and_references(tmp_path):
    """What the build must refuse, with the site's own configuration (conf.py)."""
    _needs_sphinx()
    src = tmp_path / 'src'
    src.mkdir()
    (src / 'index.md').write_text(
        '# Broken\n\n'
        '[a page that does not exist](no_such_page.md)\n\n'
        '![a figure that does not exist](no_such_figure.png)\n\n'
        '{py:class}`mmslak.models.NoSuchBackbone`\n')
    returncode, output = _sphinx_build(str(src), tmp_path / 'html')
    assert returncode != 0
    assert 'no_such_page' in output
    assert 'no_such_figure.png' in output
    assert 'mmslak.models.NoSuchBackbone' in output
