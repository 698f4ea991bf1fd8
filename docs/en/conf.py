"""Sphinx configuration of mmslak's documentation (``make docs``; Read the Docs runs the same)."""
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)  # autodoc imports the mmslak of this clone

project = 'mmslak'
copyright = 'mmslak authors'  # noqa: A001 (Sphinx reads this name)
author = 'mmslak authors'
version = release = open(osp.join(ROOT, 'mmslak', 'version.py')).read().split("'")[1]

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build']

# Markdown pages: headings get anchors for cross-page links (page.md#anchor), and fenced
# `{eval-rst}` blocks are not needed.
myst_heading_anchors = 4
myst_enable_extensions = ['colon_fence']

# The API reference: Google-style docstrings (``Args:``), members in source order, the
# signature's type hints in the description.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_default_options = {'members': True, 'show-inheritance': True}
# Only mmslak's own docstrings: torch's and mmengine's (forward, the Hook methods) are not ours.
autodoc_inherit_docstrings = False

# Nitpicky (``-n``) holds for mmslak's own objects; the types of torch, mmengine, mmcv, mmdet,
# mmseg, numpy, onnx and the standard library are not documented here.
nitpick_ignore_regex = [
    ('py:.*', r'(torch|mmengine|mmcv|mmdet|mmseg|numpy|np|onnx|onnxruntime|scipy)(\..*)?'),
    ('py:.*', r'(typing|collections|pathlib|argparse|enum|dataclasses|contextlib|abc)\..*'),
    ('py:.*', r'(int|float|str|bool|dict|list|tuple|set|bytes|object|type|None|callable|'
              r'optional|Optional|Sequence|Iterable|Iterator|Callable|Mapping|Union|Any|'
              r'Tensor|nn\.Module|Module|Path|ndarray|array)'),
    ('py:.*', r'(re|os|pickle)\..*'),
    # bare names of torch / mmengine / mmdet types in docstrings, and the type 'dict tuple or
    # list' of the mmengine Hook docstrings that mmslak's hooks inherit
    ('py:.*', r'(ProcessGroup|Dropout|BatchNorm|MMDistributedDataParallel|Runner|Hook|Priority|'
              r'DataLoader|Dataset|Config|InstanceData|dict tuple)'),
]

html_theme = 'alabaster'
html_title = f'mmslak {release}'
html_static_path = ['_static']
html_css_files = ['custom.css']
html_theme_options = {
    'description': 'SLaK sparse large-kernel backbones for OpenMMLab 2.0',
    'fixed_sidebar': True,
    'page_width': '1240px',
    'body_max_width': 'none',
    'sidebar_width': '240px',
    'show_relbars': True,
}
html_sidebars = {'**': ['about.html', 'navigation.html', 'searchbox.html']}


# Nitpicky for mmslak's own objects: a reference to an mmslak object resolves to where this
# reference documents it (the docstrings name classes by their defining module, the API pages
# by their public package: mmslak.models.layers.LargeKernelConv is mmslak.models.LargeKernelConv);
# an mmslak object that exists but has no entry here (a private helper, a submodule) is kept as
# plain text; a name that exists nowhere in mmslak stays a warning, hence an error under -W.
def _lookup(name):
    import importlib
    parts = name.split('.')
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:i]))
        except Exception:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _candidates(target, module, klass):
    names = [target]
    if module and module.startswith('mmslak'):
        scope = module.split('.')
        names += ['.'.join(scope[:i] + [target]) for i in range(len(scope), 0, -1)]
        if klass:
            names.insert(0, f'{module}.{klass}.{target}')
    return [n for n in names if n.startswith('mmslak')]


def _resolve_mmslak(app, env, node, contnode):
    from sphinx.util.nodes import make_refnode
    if node.get('refdomain') != 'py':
        return None
    objects = env.get_domain('py').objects
    documented = env.temp_data.setdefault('mmslak_documented', {})
    if not documented:
        for name in objects:
            if name.startswith('mmslak.'):
                documented.setdefault(id(_lookup(name)), name)
    for name in _candidates(node['reftarget'], node.get('py:module'), node.get('py:class')):
        obj = _lookup(name)
        if obj is None:
            continue
        if id(obj) in documented:
            entry = objects[documented[id(obj)]]
            return make_refnode(app.builder, node['refdoc'], entry.docname, entry.node_id,
                                contnode, documented[id(obj)])
        return contnode
    # a name relative to the module that defines the documented object (the docstring's own)
    import sys
    head = node['reftarget'].split('.')[0]
    for module in [m for n, m in sorted(sys.modules.items()) if n.startswith('mmslak')]:
        obj = getattr(module, head, None)
        if obj is not None and getattr(obj, '__module__', module.__name__).startswith('mmslak'):
            return contnode
    return None


def setup(app):
    app.connect('missing-reference', _resolve_mmslak)
