"""The ops package imports no module that imports it back (no import cycles)."""
import ast
from pathlib import Path

import rubiks_service.ops

PACKAGE = Path(rubiks_service.ops.__file__).parent


def _local_imports(path: Path) -> set[str]:
    """Sibling modules a module of the package imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:  # from . import x
                names.update(alias.name for alias in node.names)
    return {name for name in names if (PACKAGE / f"{name}.py").exists()}


def test_ops_modules_import_no_cycle():
    graph = {path.stem: _local_imports(path) for path in PACKAGE.glob("*.py") if path.stem != "__init__"}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for name in graph.get(start, ()):
            if name == target or (name not in seen and reaches(name, target, seen | {name})):
                return True
        return False

    cycles = sorted(module for module in graph if reaches(module, module, set()))
    assert not cycles, f"modules on an import cycle: {cycles}"
