"""The Ray Dataset of a manifest: its validated rows -> decoded, sampled, augmented clips.

    read_manifest (parsed, validated once)  ->  from_items(manifest_rows)  ->  random_shuffle (train)
      ->  map_batches(ClipDecoder)      (decord, TSN sampling, crops, flip; uint8 out)
      ->  iter_torch_batches            (in the Train workers, via get_dataset_shard)

The frame cache (`cache_frames=True`), for datasets that fit in the object store: every video is
decoded once, all its frames at the decode size (`FrameDecoder`), and materialized; each epoch then
only samples and augments (`ClipSampler`, run by the consumer as its collate function), so an epoch
costs no decoding and every epoch draws fresh frames, crops and flips.
"""
from __future__ import annotations

from collections.abc import Sequence

from .clip_spec import ClipMode, ClipSpec
from .decoders import UNUSABLE_LABEL, ClipDecoder, FrameDecoder
from .manifest import Manifest, ManifestError, read_manifest


def manifest_rows(manifest: Manifest) -> list[dict]:
    """One row per manifest row, in the decoders' columns (file, path, label). Rows the manifest skipped
    stay in as unusable ones, so the consumer's data-quality check counts them like unreadable videos."""
    rows = [{"file": r.path, "path": r.listed_path or r.path, "label": r.label} for r in manifest.records]
    return rows + [{"file": "", "path": "", "label": UNUSABLE_LABEL}] * len(manifest.skipped)


def build_dataset(
    manifest_path: str,
    spec: ClipSpec,
    *,
    data_root: str | None = None,
    classes: Sequence[str] | str | None = None,
    batch_size: int = 8,
    shuffle: bool | None = None,
    num_blocks: int | None = None,
    decode_cpus: float = 1.0,
    concurrency: int | None = None,
    cache_frames: bool = False,
):
    """A Ray Dataset of decoded clips, plus the validated `Manifest` it was built from.

    With `cache_frames`, the dataset holds every video's frames instead (decoded now, once,
    and materialized): the consumer turns them into clips with a `ClipSampler(spec)`, and
    shuffles with its local shuffle buffer (the rows are already in memory).

    Without it, Ray Data re-creates the shuffle and the decoder actors for every epoch from the
    same arguments, so a seed would replay the same order and crops each epoch: training draws
    fresh randomness instead (the frame cache gives varied epochs that also reproduce)."""
    import ray.data

    manifest = read_manifest(manifest_path, data_root=data_root, classes=classes)
    if len(manifest) == 0:
        raise ManifestError(f"{manifest_path}: no usable rows ({len(manifest.skipped)} skipped)")
    rows = manifest_rows(manifest)
    several = (concurrency or 1) > 1 or cache_frames  # several decoders, or several workers' shards
    blocks = (num_blocks or max(1, min(len(manifest) // batch_size, 64))) if several else 1
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    pool = ray.data.ActorPoolStrategy(size=concurrency or 1)
    if cache_frames:
        ds = ds.map_batches(FrameDecoder, fn_constructor_kwargs={"short_side": spec.decode_short_side},
                            batch_size=batch_size, batch_format="numpy", num_cpus=decode_cpus, compute=pool)
        ds.context.execution_options.preserve_order = True  # a seeded run then sees the same epochs
        return ds.materialize(), manifest
    if shuffle if shuffle is not None else spec.mode is ClipMode.TRAIN:
        # light: a tenth of a CPU, so it never waits behind the decoders and the Train workers
        ds = ds.random_shuffle(num_cpus=0.1)
    ds = ds.map_batches(ClipDecoder, fn_constructor_kwargs={"spec": spec}, batch_size=batch_size,
                        batch_format="numpy", num_cpus=decode_cpus, compute=pool)
    return ds, manifest
