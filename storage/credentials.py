"""Credentials of object stores: kept out of parameters, resolved where the data is opened.

Flow parameters are stored and shown by Prefect, so fsspec options that carry secrets are
refused there (:func:`refuse_secrets`); the secrets come from a named Prefect block or from
the standard AWS chain (environment variables, profile, instance role) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from storage.errors import ConfigError

#: Turns a credentials block's name into fsspec options (set by the layer that knows blocks).
Resolver = Callable[[str], dict[str, Any]]
_resolvers: list[Resolver] = []

__all__ = [
    "SECRET_OPTIONS",
    "merge_options",
    "redact",
    "refuse_secrets",
    "register_resolver",
    "resolve",
]

#: fsspec/s3fs/botocore option names that hold a secret, at any depth of the options.
SECRET_OPTIONS = frozenset(
    {
        "key",
        "secret",
        "token",
        "password",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key",
        "secret_key",
        "session_token",
    }
)


def refuse_secrets(options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return ``options`` (as a dict) if no option holds a secret; raise otherwise.

    >>> refuse_secrets({"endpoint_url": "http://127.0.0.1:9000"})
    {'endpoint_url': 'http://127.0.0.1:9000'}
    >>> refuse_secrets({"client_kwargs": {"aws_secret_access_key": "x"}})
    Traceback (most recent call last):
    ...
    ValueError: Received the secret 'client_kwargs.aws_secret_access_key' in storage_options, ...

    Raises:
        ValueError: Naming the option, and what to use instead.
    """
    if options is None:
        return None
    found = _secret_paths(options, "")
    if found:
        raise ValueError(
            f"Received the secret {found[0]!r} in storage_options, expected options without "
            "secrets (parameters are stored and shown by Prefect): name a Prefect block in "
            "`credentials_block` (an AwsCredentials or a Secret block), or use the AWS "
            "environment variables or profile"
        )
    return dict(options)


def redact(value: Any) -> Any:
    """``value`` with the value of every secret option replaced by ``'***'``, at any depth.

    For echoing a refused input (an error message, a log line) without the secret in it.

    >>> redact({"endpoint_url": "http://s3:9000", "client_kwargs": {"aws_secret_access_key": "x"}})
    {'endpoint_url': 'http://s3:9000', 'client_kwargs': {'aws_secret_access_key': '***'}}
    """
    if isinstance(value, Mapping):
        return {
            k: "***" if str(k).lower() in SECRET_OPTIONS and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redact(item) for item in value)
    return value


def _secret_paths(options: Mapping[str, Any], prefix: str) -> list[str]:
    found: list[str] = []
    for name, value in options.items():
        path = f"{prefix}{name}"
        if str(name).lower() in SECRET_OPTIONS and value not in (None, ""):
            found.append(path)
        elif isinstance(value, Mapping):
            found.extend(_secret_paths(value, f"{path}."))
    return found


def register_resolver(resolver: Resolver) -> None:
    """Make ``resolver`` the way block names become fsspec options in this process.

    The orchestration layer registers Prefect's blocks (``tasks`` does, on import), so the
    storage layer needs no Prefect; the last registered wins.
    """
    _resolvers.append(resolver)


def resolve(block: str) -> dict[str, Any]:
    """The fsspec options (secrets included) of the credentials block named ``block``.

    Raises:
        ConfigError: If no resolver is registered in this process.
    """
    if not _resolvers:
        raise ConfigError(
            f"Received credentials_block={block!r}, but nothing in this process reads "
            "credentials blocks: run through segflow's flows or command line (Prefect), or "
            "use the AWS environment variables or profile instead"
        )
    return dict(_resolvers[-1](block))


def merge_options(options: Mapping[str, Any] | None, secrets: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with a credentials block's ``secrets`` merged in, nested dicts merged too.

    The block wins where both set a value, and ``client_kwargs``/``config_kwargs`` set in the
    parameters survive a block that sets other keys of them.

    >>> params = {"endpoint_url": "http://s3:9000", "client_kwargs": {"verify": False}}
    >>> block = {"key": "k", "client_kwargs": {"region_name": "eu-west-1"}}
    >>> merge_options(params, block)["client_kwargs"]
    {'verify': False, 'region_name': 'eu-west-1'}
    """
    merged = dict(options or {})
    for name, value in secrets.items():
        base = merged.get(name)
        if isinstance(base, Mapping) and isinstance(value, Mapping):
            merged[name] = merge_options(base, value)
        else:
            merged[name] = value
    return merged
