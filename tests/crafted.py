"""A crafted "checkpoint": a pickle whose loading would run a shell command creating a file."""
import os

import torch


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_crafted_checkpoint(path, marker) -> str:
    """A file shaped like a training checkpoint (`torch.save` zip) with a payload that runs code."""
    torch.save({"tier": "nano", "num_classes": 2, "num_frames": 4, "variant": "rs", "model": {},
                "config": _RunsCode(str(marker)), "classes": ["a", "b"]}, path)
    return str(path)
