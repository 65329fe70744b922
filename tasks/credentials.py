"""Credentials blocks: a Prefect block's name in, s3fs options (secrets included) out.

Configs name a block in ``credentials_block`` (flow parameters are stored and shown by
Prefect, so they never hold the secrets themselves); :func:`block_options` reads the block
from the Prefect API where the data is opened, in the flow's process or on a Dask worker.
Importing :mod:`tasks` registers it with :mod:`storage.credentials`, and every process that
runs a segflow task imports :mod:`tasks`.

Two kinds of block are read:

- prefect-aws's ``AwsCredentials``: access key id, secret key, session token, profile,
  region and client parameters become s3fs's ``key``, ``secret``, ``token``, ``profile``,
  ``client_kwargs`` and ``endpoint_url``;
- a core ``Secret`` whose value is a JSON object of fsspec options, used as it is, e.g.
  ``{"key": "AKIA...", "secret": "...", "endpoint_url": "https://minio.example:9000"}``.

A name is a block document's name (``prod-s3``: the AwsCredentials block of that name, else
the Secret), or Prefect's slug form naming the type as well (``aws-credentials/prod-s3``,
``secret/prod-s3``). Blocks read are kept :data:`CACHE_SECONDS` per process (a run opens its
store many times), so a rotated secret is used from then on.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import TYPE_CHECKING, Any

from segflow.errors import ConfigError

if TYPE_CHECKING:
    from prefect.blocks.core import Block
    from prefect_aws import AwsCredentials

__all__ = ["CACHE_SECONDS", "aws_options", "block_options", "forget_blocks", "secret_options"]

#: How long a block read from the API is reused by this process.
CACHE_SECONDS = 60.0
#: What a credentials block may be, as the errors say it.
_EXPECTED = (
    "an AwsCredentials block (prefect-aws) or a Secret block whose value is a JSON object "
    "of fsspec options"
)
_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def block_options(name: str) -> dict[str, Any]:
    """The fsspec options (secrets included) held by the credentials block ``name``.

    Raises:
        ConfigError: If there is no such block, it is of another type, or its value is not
            usable as fsspec options; the message names the block and what was expected.
    """
    key = (_api_url(), name)
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return copy.deepcopy(cached[1])
    options = _options_of(name, _load(name))
    with _cache_lock:
        _cache[key] = (now, options)
    return copy.deepcopy(options)


def forget_blocks() -> None:
    """Drop the blocks this process has read, so the next use reads them again."""
    with _cache_lock:
        _cache.clear()


def aws_options(credentials: AwsCredentials) -> dict[str, Any]:
    """s3fs options from a prefect-aws ``AwsCredentials`` block (unset fields left out).

    >>> from prefect_aws import AwsCredentials
    >>> aws_options(AwsCredentials(aws_access_key_id="AKIAEXAMPLE", region_name="eu-west-1"))
    {'key': 'AKIAEXAMPLE', 'client_kwargs': {'region_name': 'eu-west-1'}}

    Raises:
        ConfigError: If the block assumes a role (s3fs cannot refresh that by itself).
    """
    if credentials.assume_role_arn:
        raise ConfigError(
            f"Received an AwsCredentials block with assume_role_arn="
            f"{credentials.assume_role_arn!r}, expected keys or a profile: to assume a role, "
            "name a profile with role_arn and source_profile in the AWS config file instead "
            "(botocore refreshes it)"
        )
    secret = credentials.aws_secret_access_key
    client = credentials.aws_client_parameters
    config = dict(client.config or {})
    unsigned = config.get("signature_version") == "unsigned"
    if unsigned:  # botocore wants its UNSIGNED object there; s3fs's word for it is anon
        del config["signature_version"]
    options: dict[str, Any] = {
        "key": credentials.aws_access_key_id,
        "secret": secret.get_secret_value() if secret is not None else None,
        "token": credentials.aws_session_token,
        "profile": credentials.profile_name,
        "endpoint_url": client.endpoint_url,
        "use_ssl": None if client.use_ssl else False,
        "anon": True if unsigned else None,
    }
    client_kwargs = {
        "region_name": credentials.region_name,
        "api_version": client.api_version,
        "verify": str(client.verify_cert_path) if client.verify_cert_path else client.verify,
    }
    options["client_kwargs"] = _without_none(client_kwargs) or None
    options["config_kwargs"] = config or None
    return _without_none(options)


def secret_options(name: str, value: Any) -> dict[str, Any]:
    """The fsspec options held by the Secret block ``name`` (its value, a JSON object).

    >>> secret_options("s3", {"key": "k", "secret": "s"})
    {'key': 'k', 'secret': 's'}
    >>> secret_options("s3", "not json")
    Traceback (most recent call last):
    ...
    segflow.errors.ConfigError: Received credentials_block='s3', a Secret block holding a str, ...

    Raises:
        ConfigError: If the value is not a JSON object (the value itself is never quoted).
    """
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(
            f"Received credentials_block={name!r}, a Secret block holding a "
            f"{type(value).__name__}, expected a JSON object of fsspec options such as "
            '{"key": ..., "secret": ..., "endpoint_url": ...}'
        )
    return dict(value)


def _options_of(name: str, block: Block) -> dict[str, Any]:
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials

    if isinstance(block, AwsCredentials):
        return aws_options(block)
    if isinstance(block, Secret):
        return secret_options(name, block.get())
    raise ConfigError(
        f"Received credentials_block={name!r}, a {type(block).__name__} block, expected {_EXPECTED}"
    )


def _load(name: str) -> Block:
    """The block named ``name`` (a slug names its type; a bare name tries both types)."""
    from prefect.blocks.core import Block
    from prefect.blocks.system import Secret
    from prefect_aws import AwsCredentials  # registers the block type for Block.load

    if "/" in name:
        candidates: list[tuple[type[Block], str]] = [(Block, name)]
    else:
        candidates = [(AwsCredentials, name), (Secret, name)]
    for kind, reference in candidates:
        try:
            # _sync: a coroutine is no use to the caller, even if it runs in an event loop.
            loaded = kind.load(reference, _sync=True)  # type: ignore[call-arg]
        except ValueError:  # Prefect's "Unable to find block document named ..."
            continue
        if isinstance(loaded, Block):
            return loaded
    raise ConfigError(
        f"Received credentials_block={name!r}, expected the name of {_EXPECTED}: no such "
        f"block in the Prefect API at {_api_url() or 'the local ephemeral server'} (create "
        f"one with `AwsCredentials(...).save({name!r})` or in the UI's Blocks page)"
    )


def _api_url() -> str:
    """The Prefect API this process talks to (blocks of different servers are different)."""
    from prefect.settings import get_current_settings

    return str(get_current_settings().api.url or "")


def _without_none(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}
