"""No module of the package imports from a layer above its own (walked with ``ast``).

The layers, lowest first: the base (``stack``, ``registry``, ``version``, ``utils``), the
checkpoint pipeline, the ops, the models and datasets, the engine (hooks, runners, optimizers),
the run-config glue of the tools (``apis``), and analysis and deployment. A module may import
from its own layer and those below; packages that share a layer (models and datasets, analysis
and deployment) do not import each other. Imports inside functions and relative imports count.
``mmslak/__init__.py`` imports everything (it registers the modules) and is not ranked.
"""
import ast
import os
import os.path as osp

PACKAGE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mmslak')
# Each layer: the modules and packages (path prefixes under mmslak/) it holds.
LAYERS = (
    ('stack.py', 'registry.py', 'version.py', 'utils/'),
    ('checkpoint/', ),
    ('ops/', ),
    ('models/', 'datasets/'),
    ('engine/', ),
    ('apis/', ),
    ('analysis/', 'deployment/'),
)
UNRANKED = ('__init__.py', )


def _place(path):
    """``(rank, group)`` of a file under mmslak/; the base layer is one group."""
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix) and prefix.endswith('/'):
                return rank, 'base' if rank == 0 else prefix
    return None


def _module_path(module):
    """The file (relative to mmslak/) of the dotted ``module`` under mmslak, if it is one."""
    parts = module.split('.')[1:]
    if not parts:
        return '__init__.py'
    base = osp.join(*parts)
    if osp.isfile(osp.join(PACKAGE, base + '.py')):
        return base + '.py'
    if osp.isfile(osp.join(PACKAGE, base, '__init__.py')):
        return base + '/__init__.py'
    return None


def _imported_modules(path, tree):
    """``(line, dotted module)`` of every mmslak module that the file ``path`` imports."""
    package = ['mmslak'] + path.split('/')[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == 'mmslak':
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = '.'.join(package[:len(package) - node.level + 1] +
                                ([node.module] if node.module else []))
            elif node.module and node.module.split('.')[0] == 'mmslak':
                base = node.module
            else:
                continue
            for alias in node.names:  # `from pkg import module` imports pkg.module
                submodule = f'{base}.{alias.name}'
                yield node.lineno, submodule if _module_path(submodule) else base


def _python_files():
    for folder, _, files in os.walk(PACKAGE):
        for name in sorted(files):
            if name.endswith('.py'):
                yield osp.relpath(osp.join(folder, name), PACKAGE).replace(os.sep, '/')


def layering_violations():
    """``file:line: ...`` for each import from a higher or a sibling layer, and unranked files."""
    violations = []
    for path in _python_files():
        if path in UNRANKED:
            continue
        place = _place(path)
        if place is None:
            violations.append(f'mmslak/{path}: in no layer; add it to LAYERS')
            continue
        with open(osp.join(PACKAGE, path)) as file:
            tree = ast.parse(file.read(), path)
        for line, module in sorted(set(_imported_modules(path, tree))):
            target = _module_path(module)
            target_place = (len(LAYERS), 'mmslak') if target in UNRANKED else _place(target or '')
            if target_place is None:
                continue  # not a file of the package (an attribute, a missing optional module)
            if target_place[0] > place[0] or (target_place[0] == place[0] and
                                              target_place[1] != place[1]):
                violations.append(f'mmslak/{path}:{line}: imports {module} '
                                  f'(layer {target_place[0]} {target_place[1]}) from layer '
                                  f'{place[0]} {place[1]}')
    return violations


def test_no_module_imports_from_a_layer_above_it():
    violations = layering_violations()
    assert not violations, 'imports against the layering:\n' + '\n'.join(violations)


def test_the_runner_and_the_pipeline_import_no_backbone():
    """They learn SLaK's key names and diagnoses from the format it registers."""
    found = []
    for path in _python_files():
        if path.startswith(('engine/', 'checkpoint/')):
            with open(osp.join(PACKAGE, path)) as file:
                tree = ast.parse(file.read(), path)
            found += [f'mmslak/{path}:{line}: imports {module}'
                      for line, module in _imported_modules(path, tree)
                      if module.startswith('mmslak.models.backbones')]
    assert not found, '\n'.join(found)


def test_the_walk_sees_relative_and_function_level_imports():
    source = ('from ...engine import hooks\n'
              'def build():\n'
              '    from mmslak.apis import build_runner\n'
              '    import mmslak.analysis.erf\n')
    found = sorted(_imported_modules('models/backbones/slak.py', ast.parse(source)))
    assert found == [(1, 'mmslak.engine.hooks'), (3, 'mmslak.apis'), (4, 'mmslak.analysis.erf')]
    assert _place('models/backbones/slak.py') < _place('engine/hooks/__init__.py')
