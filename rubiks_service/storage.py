"""Object storage: `s3://bucket/key` wherever the service takes a path (manifests, videos, frame
shards, Ray Train's `storage_path`, checkpoints, models), through pyarrow's `S3FileSystem`.

Configured the standard AWS way, in the environment of every process that touches the data (each
Ray node's, the CLI's):

    AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL   an S3-compatible service (MinIO, Ceph, GCS's XML API);
                                              unset: AWS itself. MLFLOW_S3_ENDPOINT_URL is read last.
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  the credentials (or whatever else the AWS SDK's default
                                              chain finds: a profile, an instance role)
    AWS_DEFAULT_REGION or AWS_REGION          default us-east-1

pyarrow does not read every AWS variable (not the endpoint in every version), so the endpoint and
region are passed to it explicitly. The keys are left to the SDK's chain on each node: a filesystem
object pickled into a Ray task never carries a secret.

Every failure becomes a `StorageError` of one line that names the URI and the cause (no such key,
no such bucket, access denied, credentials refused, endpoint unreachable) and never a credential.
Requests are retried (the AWS standard strategy: transient errors and throttling, with backoff).
"""
from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator

SCHEME = "s3://"
RETRY_ATTEMPTS = 5  # per request; the AWS standard strategy retries transient errors with backoff
CONNECT_TIMEOUT_S = 5.0


class StorageError(OSError):
    """An object-storage request that failed, with its cause in one line (no credentials in it);
    `cause` alone, e.g. "no such key", for messages that name the object themselves."""

    def __init__(self, message: str, cause: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause or message


class ObjectNotFound(StorageError, FileNotFoundError):
    """The key (or its bucket) does not exist."""


def is_uri(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def split(uri: str) -> tuple[str, str]:
    """`s3://bucket/a/b` -> ("bucket", "a/b")."""
    bucket, _, key = uri[len(SCHEME):].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: no bucket in the URI (expected s3://bucket/key)")
    return bucket, key


def endpoint() -> str | None:
    """The S3 endpoint the environment names, or None for AWS itself."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"


def filesystem(endpoint_url: str | None = None):
    """The pyarrow S3FileSystem for `endpoint_url` (default: the environment's endpoint); one per
    endpoint, region and credentials, made once."""
    credentials = hash((os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")))
    return _filesystem(endpoint_url or endpoint(), region(), credentials)


@functools.lru_cache(maxsize=8)
def _filesystem(endpoint_url: str | None, region_name: str, credentials: int):
    from pyarrow import fs

    kwargs = {}
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        kwargs = {"endpoint_override": host.rstrip("/") if host else endpoint_url,
                  "scheme": scheme if host else "https"}
    return fs.S3FileSystem(region=region_name, connect_timeout=CONNECT_TIMEOUT_S, request_timeout=60,
                           retry_strategy=fs.AwsStandardS3RetryStrategy(max_attempts=RETRY_ATTEMPTS),
                           allow_bucket_creation=False, allow_bucket_deletion=False, **kwargs)


def fs_path(uri: str) -> str:
    """What pyarrow's filesystem takes: `bucket/key`."""
    bucket, key = split(uri)
    return f"{bucket}/{key}".rstrip("/")


def to_uri(fs_path_: str) -> str:
    """`bucket/key` (a path on the S3 filesystem) -> `s3://bucket/key`."""
    return SCHEME + fs_path_.lstrip("/")


def resolve(path: str) -> str:
    """A URI unchanged; a local path made absolute."""
    return path if is_uri(path) else os.path.abspath(path)


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_uri(base) else os.path.join(base, *parts)


def parent(path: str) -> str:
    """The folder (prefix) a file is in."""
    if is_uri(path):
        bucket, key = split(path)
        return f"{SCHEME}{bucket}/{posixpath.dirname(key)}".rstrip("/")
    return os.path.dirname(os.path.abspath(path))


def is_absolute(path: str) -> bool:
    return is_uri(path) or os.path.isabs(path)


def ray_storage(path: str):
    """(storage_path, storage_filesystem) as Ray Train / Tune's RunConfig takes them: a local path made
    absolute and no filesystem, or `bucket/prefix` and the S3 filesystem with its endpoint set."""
    if is_uri(path):
        return fs_path(path), filesystem()
    return os.path.abspath(path), None


# --- errors -----------------------------------------------------------------------------------

# the AWS SDK's error names (as pyarrow quotes them) and what they mean to a user
_CAUSES = (
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "no such bucket", ObjectNotFound),
    (("NO_SUCH_KEY", "NoSuchKey", "Path does not exist", "RESOURCE_NOT_FOUND"), "no such key", ObjectNotFound),
    (("InvalidAccessKeyId", "SignatureDoesNotMatch", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH",
      "MISSING_AUTHENTICATION_TOKEN", "ExpiredToken", "InvalidToken"),
     "credentials refused (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)", StorageError),
    (("ACCESS_DENIED", "AccessDenied", "Forbidden"), "access denied", StorageError),
    (("NETWORK_CONNECTION", "curlCode", "Couldn't connect", "Could not resolve", "Connection refused",
      "Operation timed out", "Timeout was reached"),
     "cannot reach the endpoint", StorageError),
)


def _cause(exc: BaseException, probe: str | None) -> tuple[str, type[StorageError]]:
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return "no such key", ObjectNotFound
    for markers, cause, kind in _CAUSES:
        if any(m in text for m in markers):
            return _denial(probe) if cause == "access denied" and probe else (cause, kind)
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"\s+", " ", first)[:200], StorageError


def _denial(uri: str) -> tuple[str, type[StorageError]]:
    """Why a request on `uri` was refused with 403. A HEAD answer has no body to say it, so one listing
    of at most one key asks again: its error code tells refused credentials from a bucket's policy."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split(uri)
    try:
        # a new session: the default one keeps the credentials it first read
        boto3.session.Session().client("s3", endpoint_url=endpoint(), region_name=region()).list_objects_v2(
            Bucket=bucket, Prefix=key, MaxKeys=1)
    except ClientError as exc:
        return _cause(OSError(exc.response.get("Error", {}).get("Code", "")), probe=None)
    except BotoCoreError:
        pass
    return "access denied", StorageError


def error(exc: BaseException, uri: str, action: str = "read") -> StorageError:
    """`exc` from a request on `uri` as a one-line StorageError; the endpoint is named when it is the
    cause (it is no secret: the keys never appear)."""
    cause, kind = _cause(exc, probe=uri)
    cause += f" at {endpoint() or 'AWS S3'}" if cause.startswith("cannot reach") else ""
    return kind(f"cannot {action} {uri}: {cause}", cause)


@contextlib.contextmanager
def _translated(uri: str, action: str) -> Iterator[None]:
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:  # pyarrow raises OSError (FileNotFoundError for a missing key)
        raise error(exc, uri, action) from None


# --- objects ----------------------------------------------------------------------------------

def read_bytes(uri: str) -> bytes:
    with _translated(uri, "read"), filesystem().open_input_stream(fs_path(uri)) as f:
        return f.read()


def read_text(uri: str) -> str:
    return read_bytes(uri).decode()


def write_bytes(uri: str, data: bytes) -> None:
    with _translated(uri, "write"), filesystem().open_output_stream(fs_path(uri)) as f:
        f.write(data)


def upload(local_file: str, uri: str) -> None:
    with _translated(uri, "write"), open(local_file, "rb") as src, \
            filesystem().open_output_stream(fs_path(uri)) as dst:
        shutil.copyfileobj(src, dst, length=8 << 20)


def kind(uri: str) -> str:
    """"file", "dir" (a prefix with keys under it) or "missing"."""
    from pyarrow import fs

    with _translated(uri, "read"):
        info = filesystem().get_file_info(fs_path(uri))
    return {fs.FileType.File: "file", fs.FileType.Directory: "dir"}.get(info.type, "missing")


def exists(path: str) -> bool:
    return kind(path) != "missing" if is_uri(path) else os.path.exists(path)


def list_files(uri: str, suffixes: Iterable[str] = ()) -> list[str]:
    """The objects under a prefix (recursively), as sorted URIs; only those ending in `suffixes` if given."""
    from pyarrow import fs

    ends = tuple(s.lower() for s in suffixes)
    with _translated(uri, "list"):
        infos = filesystem().get_file_info(fs.FileSelector(fs_path(uri), recursive=True, allow_not_found=True))
    return sorted(to_uri(i.path) for i in infos
                  if i.type == fs.FileType.File and (not ends or i.path.lower().endswith(ends)))


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file holding `path`: the path itself when it is local, else a temporary download
    (removed afterwards) named like the object."""
    if not is_uri(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rubiks-s3-") as tmp:
        local = os.path.join(tmp, posixpath.basename(split(path)[1]) or "object")
        with _translated(path, "read"), filesystem().open_input_stream(fs_path(path)) as src, \
                open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, length=8 << 20)
        yield local


def check_access(read: Iterable[str] = (), write: Iterable[str] = ()) -> None:
    """Fail early, with one line, when a URI to read is missing or unreachable or the bucket of one to
    write under cannot be listed: before a run spends minutes starting Ray and opening MLflow runs."""
    for uri in (p for p in read if is_uri(p)):
        if kind(uri) == "missing":
            raise ObjectNotFound(f"cannot read {uri}: no such key", "no such key")
    from pyarrow import fs

    for uri in (p for p in write if is_uri(p)):
        bucket = split(uri)[0]
        with _translated(uri, "write under"):
            info = filesystem().get_file_info(bucket)
        if info.type == fs.FileType.NotFound:
            raise ObjectNotFound(f"cannot write under {uri}: no such bucket", "no such bucket")
