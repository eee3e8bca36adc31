import os

import numpy as np
import pytest

from rubiks_service.data.synth import SynthConfig, generate, render_video, write_mp4


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """A small synthetic dataset of real mp4 files (3 train + 1 val video per class)."""
    out = tmp_path_factory.mktemp("synth")
    generate(str(out), SynthConfig(train_per_class=3, val_per_class=1, num_frames=12, size=48), progress=False)
    return out


@pytest.fixture
def mp4_file(tmp_path):
    """One 20-frame 40x56 mp4 with known content (a moving square)."""
    frames = np.zeros((20, 40, 56, 3), np.uint8)
    for t in range(20):
        frames[t, 10:20, 2 * t : 2 * t + 10] = 255
    path = os.path.join(tmp_path, "clip.mp4")
    write_mp4(path, frames)
    return path, frames


@pytest.fixture
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False, ignore_reinit_error=True)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


__all__ = ["render_video"]
