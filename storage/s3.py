"""A store under an S3 prefix, through s3fs (fsspec).

``s3://bucket/prefix`` maps key ``a/b`` to object ``prefix/a/b`` in ``bucket``. Every write is
one PUT, which S3 makes visible whole or not at all; :meth:`S3Store.create_exclusive` is a
conditional PUT (``If-None-Match: *``). S3 is strongly consistent, and no listing cache is
kept, so :meth:`S3Store.exists` and :meth:`S3Store.list` see a write as soon as it returns.

Works with AWS S3 and with S3-compatible servers (MinIO, moto, Ceph) through ``endpoint_url``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlparse

import s3fs
import zarr.storage
from botocore.exceptions import BotoCoreError, ClientError
from zarr.core.sync import sync as zarr_sync

from storage.base import Store, check_key
from storage.errors import ConfigError, KeyNotFoundError, StoreError

#: Environment variable naming the S3 endpoint when no ``storage_options`` are given.
ENDPOINT_ENV = "SEGFLOW_S3_ENDPOINT_URL"

#: What s3fs/botocore raise for a failed request; anything else is a bug, not a store problem.
_S3_ERRORS = (OSError, BotoCoreError, ClientError)
#: Keys per ``list_objects_v2`` page and per ``delete_objects`` request (the S3 maximum).
_LIST_PAGE = 1000
_DELETE_BATCH = 1000
#: A concurrent conditional PUT on the same key may be refused with 409 (retry) by AWS.
_CONFLICT_RETRIES = 5


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket[/prefix]`` into the bucket and the prefix (no surrounding ``/``).

    >>> parse_s3_url("s3://data/runs/a/")
    ('data', 'runs/a')
    >>> parse_s3_url("s3://data")
    ('data', '')

    Raises:
        ConfigError: If the URL is not ``s3://`` / ``s3a://``, has no bucket, or the prefix
            has empty, ``.`` or ``..`` parts.
    """
    parsed = urlparse(url)
    if parsed.scheme.lower() not in ("s3", "s3a") or not parsed.netloc:
        raise ConfigError(f"Invalid S3 store URL {url!r}: expected 's3://bucket[/prefix]'.")
    prefix = parsed.path.strip("/")
    if prefix:
        check_key(prefix)
    return parsed.netloc, prefix


def default_storage_options() -> dict[str, Any]:
    """Return the s3fs options that given ``storage_options`` add to (and override).

    That is the endpoint in ``$SEGFLOW_S3_ENDPOINT_URL`` if set. Credentials and region come
    from the usual AWS sources (environment, config files, roles) unless options name them.
    """
    endpoint = os.environ.get(ENDPOINT_ENV)
    return {"endpoint_url": endpoint} if endpoint else {}


class S3Store(Store):
    """A store rooted at an S3 prefix.

    Args:
        url: ``s3://bucket[/prefix]``.
        storage_options: Options for :class:`s3fs.S3FileSystem` (``endpoint_url``, ``key``,
            ``secret``, ``client_kwargs``...), over :func:`default_storage_options`. Configs
            never hold secrets (see :mod:`storage.credentials`); they resolve them into these.

    The bucket is checked once, on first use: a missing bucket or an unreachable endpoint
    raises :class:`StoreError` naming the URL.
    """

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self._options = {**default_storage_options(), **(storage_options or {})}
        self._fs = filesystem(self._options)
        self._bucket_checked = False

    # -- paths and errors ------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        """Return the S3 object key of store key ``key``."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _dir_prefix(self, prefix: str) -> str:
        """Return the S3 ``Prefix`` listing everything under store prefix ``prefix``."""
        if not prefix:
            return f"{self.prefix}/" if self.prefix else ""
        return self._object_key(prefix) + "/"

    def _path(self, key: str) -> str:
        """Return the s3fs path (``bucket/object``) of store key ``key``."""
        return f"{self.bucket}/{self._object_key(key)}"

    def _relative(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def _endpoint(self) -> str:
        return str(self._options.get("endpoint_url") or "the default AWS endpoint")

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn s3fs/botocore failures into :class:`StoreError` naming the store and action."""
        self._check_bucket()
        try:
            yield
        except _S3_ERRORS as exc:
            raise StoreError(
                f"S3 store {self.url!r} (endpoint {self._endpoint()}): could not {action}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _check_bucket(self) -> None:
        """Raise :class:`StoreError` if the bucket is missing or the endpoint unreachable."""
        if self._bucket_checked:
            return
        try:
            self._fs.call_s3("head_bucket", Bucket=self.bucket)
        except PermissionError:
            pass  # credentials without s3:ListBucket may still read and write objects
        except FileNotFoundError:
            raise StoreError(
                f"S3 store {self.url!r}: bucket {self.bucket!r} does not exist at "
                f"{self._endpoint()}; create it first."
            ) from None
        except _S3_ERRORS as exc:
            raise StoreError(
                f"S3 store {self.url!r}: cannot reach {self._endpoint()}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._bucket_checked = True

    # -- the Store interface ---------------------------------------------------------------

    def zarr_store(self, *, read_only: bool = False) -> zarr.storage.FsspecStore:
        self._check_bucket()
        root = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        # max_concurrency 1: a chunk read is one GET, not a HEAD (for the size) then a GET.
        fs = filesystem({"max_concurrency": 1, **self._options}, asynchronous=True)
        return zarr.storage.FsspecStore(fs, read_only=read_only, path=root)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        with self._errors(f"read key {key!r}"):
            try:
                # One GET: with more than one connection allowed, s3fs first asks the size
                # (a HEAD) to split large objects into ranges; a store's objects are small.
                return bytes(self._fs.cat_file(path, max_concurrency=1))
            except (FileNotFoundError, IsADirectoryError):
                raise KeyNotFoundError(f"No object at key {key!r} in store {self.url!r}.") from None

    def write_bytes(self, key: str, data: bytes) -> None:
        # One PUT (multipart above 100 MB, still committed at once): readers see old or new.
        path = self._path(key)
        with self._errors(f"write key {key!r}"):
            self._fs.pipe_file(path, bytes(data))

    def write_many(self, objects: Mapping[str, bytes]) -> None:
        """Store ``objects`` with concurrent PUTs (s3fs runs them on its event loop)."""
        if len(objects) < 2:
            super().write_many(objects)
            return
        paths = {self._path(key): bytes(data) for key, data in objects.items()}
        with self._errors(f"write {len(paths)} objects"):
            self._fs.pipe(paths)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Store ``data`` at ``key`` only if absent, with a conditional PUT.

        S3 (since 2024), MinIO and moto honour ``If-None-Match: *``. A server that ignores the
        header would make this a plain PUT (always True); one that rejects it as not
        implemented gets a best effort instead: check, then PUT, which two writers can race.
        """
        object_key = self._object_key(key)
        attempt = 0
        with self._errors(f"create key {key!r}"):
            while True:
                try:
                    self._fs.call_s3(
                        "put_object",
                        Bucket=self.bucket,
                        Key=object_key,
                        Body=bytes(data),
                        IfNoneMatch="*",
                    )
                    return True
                except FileExistsError:  # s3fs's translation of 412 on If-None-Match
                    return False
                except OSError as exc:
                    code = _error_code(exc)
                    if code == "NotImplemented":
                        return self._create_best_effort(key, data)
                    # AWS answers 409 while another conditional PUT on the key is in flight.
                    attempt += 1
                    if code != "ConditionalRequestConflict" or attempt == _CONFLICT_RETRIES:
                        raise
                    time.sleep(0.05 * 2**attempt)

    def _create_best_effort(self, key: str, data: bytes) -> bool:
        if self.exists(key):
            return False
        self.write_bytes(key, data)
        return True

    def exists(self, key: str) -> bool:
        object_key = self._object_key(key)
        with self._errors(f"check key {key!r}"):
            try:
                self._fs.call_s3("head_object", Bucket=self.bucket, Key=object_key)
                return True
            except FileNotFoundError:
                return False

    def list(self, prefix: str = "") -> list[str]:
        with self._errors(f"list prefix {prefix!r}"):
            keys = [self._relative(k) for k in self._list_objects(self._dir_prefix(prefix))]
        if not keys and prefix and self.exists(prefix):
            return [prefix]  # the prefix names one object, as a file path does locally
        return sorted(keys)

    def _list_objects(self, s3_prefix: str) -> Iterator[str]:
        """Yield every object key starting with ``s3_prefix`` (paging through the listing)."""
        page_token: dict[str, str] = {}
        while True:
            page = self._fs.call_s3(
                "list_objects_v2",
                Bucket=self.bucket,
                Prefix=s3_prefix,
                MaxKeys=_LIST_PAGE,
                **page_token,
            )
            yield from (item["Key"] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                return
            page_token = {"ContinuationToken": page["NextContinuationToken"]}

    def delete(self, key: str) -> None:
        object_key = self._object_key(key)
        with self._errors(f"delete key {key!r}"):
            # DeleteObject succeeds for a missing key.
            self._fs.call_s3("delete_object", Bucket=self.bucket, Key=object_key)

    def delete_prefix(self, prefix: str) -> None:
        check_key(prefix)  # an empty prefix would delete the whole store
        self._delete_objects([self._object_key(k) for k in self.list(prefix)])

    def _delete_objects(self, object_keys: Sequence[str]) -> None:
        with self._errors(f"delete {len(object_keys)} objects"):
            for start in range(0, len(object_keys), _DELETE_BATCH):
                batch = object_keys[start : start + _DELETE_BATCH]
                response = self._fs.call_s3(
                    "delete_objects",
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
                if response.get("Errors"):
                    raise OSError(f"DeleteObjects failed for {response['Errors'][:3]}")

    def move_prefix(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` with server-side copies; see :meth:`Store.move_prefix`.

        Chunks are copied concurrently, then ``zarr.json`` objects one by one, deepest first.
        """
        check_key(src)  # list() accepts '', but moving the whole store is never meant
        check_key(dst)
        keys = self.list(src)
        if not keys:
            return
        self.delete_prefix(dst)
        data = [k for k in keys if not k.endswith("zarr.json")]
        metadata = sorted(set(keys) - set(data), key=lambda k: -k.count("/"))
        with self._errors(f"move {src!r} to {dst!r}"):
            if data:
                self._fs.copy(
                    [self._path(k) for k in data],
                    [self._path(dst + k[len(src) :]) for k in data],
                    on_error="raise",
                )
            for key in metadata:
                self._fs.copy(self._path(key), self._path(dst + key[len(src) :]))
        self._delete_objects([self._object_key(k) for k in keys])


def _error_code(exc: BaseException) -> str:
    """Return the S3 error code behind an exception translated by s3fs, or ''."""
    response = getattr(exc.__cause__, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


#: Environment variables botocore takes credentials, profile, region or endpoint from when
#: options do not name them: part of a filesystem's identity, as the options are.
_AWS_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)

#: The filesystems in use, by :func:`_identity`; async ones are closed at exit.
_FILESYSTEMS: dict[str, s3fs.S3FileSystem] = {}
_FILESYSTEMS_LOCK = threading.Lock()
# A forked child gets a new zarr loop and new filesystems; the parent's are not its to use.
os.register_at_fork(after_in_child=_FILESYSTEMS.clear)


def filesystem(options: dict[str, Any], *, asynchronous: bool = False) -> s3fs.S3FileSystem:
    """The s3fs filesystem for ``options``, shared by every store opened with the same ones.

    fsspec's own instance cache knows only the options, so with credentials from the
    environment it would hand a filesystem signed with old credentials to a store opened
    after the environment changed. This cache also keys on the AWS variables in effect (as
    a digest). No listing cache: it would hide objects written by other processes. zarr drives
    the filesystem from its own event loop, so it gets an ``asynchronous`` instance.

    >>> one = filesystem({"key": "k1", "secret": "s1"})
    >>> one is filesystem({"key": "k1", "secret": "s1"})
    True
    >>> one is filesystem({"key": "k2", "secret": "s1"})
    False
    """
    identity = _identity(options, asynchronous)
    with _FILESYSTEMS_LOCK:
        fs = _FILESYSTEMS.get(identity)
        if fs is None:
            fs = s3fs.S3FileSystem(
                use_listings_cache=False,
                skip_instance_cache=True,
                asynchronous=asynchronous,
                **options,
            )
            _FILESYSTEMS[identity] = fs
    return fs


def _identity(options: dict[str, Any], asynchronous: bool) -> str:
    """A digest of what a filesystem is built from (no secret is kept in the clear)."""
    ambient = {name: os.environ.get(name) for name in _AWS_ENV}
    text = json.dumps([options, ambient, asynchronous], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _close_async_filesystems() -> None:
    """Close zarr's S3 sessions; unclosed, aiohttp prints 'Unclosed client session' at exit."""
    for fs in list(_FILESYSTEMS.values()):
        creator = getattr(fs, "_s3creator", None)
        if fs.asynchronous and creator is not None:
            with suppress(Exception):  # best effort during interpreter shutdown
                zarr_sync(creator.__aexit__(None, None, None), timeout=2)
    _FILESYSTEMS.clear()


# zarr registered its exit hook (stopping its loop) on import, above; hooks run last-in
# first-out, so this one runs while the loop is still there.
atexit.register(_close_async_filesystems)
