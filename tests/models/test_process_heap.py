"""The inference form keeps the memory a forward frees in the heap: repeated calls fault no pages in
(each configuration in a fresh process, since the setting is process-wide). The clips are large enough
that glibc's defaults must map some activations afresh on every call, whatever the kernels allocate."""
import os
import subprocess
import sys

import pytest

_CALLS = """
import resource, torch
from rubiks_service.models import build_model
from rubiks_service.models.inference import inference_model
from rubiks_service.models.process_heap import heap_setting
torch.set_num_threads(1)
fast = inference_model(build_model("rubiksnet-nano", num_classes=10, num_frames=8).eval())
clip = torch.randn(6, 8, 3, 224, 224)  # the stem's output, 48 x 16 x 112^2 floats, is past glibc's 32 MiB mmap limit
with torch.no_grad():
    fast(clip); fast(clip)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        fast(clip)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5, flush=True)
    print(heap_setting())
"""


def _faults_per_call(keep: str) -> tuple[float, str]:
    env = {**os.environ, "RUBIKS_KEEP_HEAP": keep}
    proc = subprocess.run([sys.executable, "-c", _CALLS], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    faults, setting = proc.stdout.split("\n")[:2]
    return float(faults), setting


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_inference_form_faults_no_pages_in_per_call_unless_opted_out():
    kept, kept_setting = _faults_per_call("1")
    default, default_setting = _faults_per_call("0")
    assert kept_setting.startswith("glibc heap only") and default_setting == "default (RUBIKS_KEEP_HEAP=0)"
    # glibc's defaults hand the freed activations back and fault them in again on every call
    assert default > 100 and kept < default / 20, (kept, default)
