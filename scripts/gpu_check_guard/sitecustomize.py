"""Makes the packages named in GPU_CHECK_BLOCK (space-separated top-level names) unimportable,
as on a GPU machine that has only torch, nvcc, ninja and pytest: scripts/gpu_check.sh puts this
folder first on PYTHONPATH, so every Python it starts (pytest, its subprocesses, the benchmarks)
fails `import ray` / `import mlflow` the way a machine without them does, here too."""
import os
import sys

_BLOCKED = frozenset(os.environ.get("GPU_CHECK_BLOCK", "").split())


class _Blocker:
    """A meta-path finder ahead of the real ones: a blocked name (or a submodule of one) is not found."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by GPU_CHECK_BLOCK)", name=name)
        return None


if _BLOCKED:
    sys.meta_path.insert(0, _Blocker())
