"""What every command shares: the console, common options, errors, parameter files.

Nothing here imports the engine's stack (zarr, Prefect, TensorFlow): the app imports this
module for ``segflow --help``.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from segflow.errors import SegflowError
from storage.credentials import redact

if TYPE_CHECKING:
    from storage import Store

__all__ = [
    "DEBUG_ENV",
    "DEFAULT_STORE",
    "CredentialsBlockOption",
    "EndpointOption",
    "StoreOption",
    "console",
    "debug_enabled",
    "endpoint_options",
    "fail",
    "load_config_file",
    "locations",
    "merge",
    "open_store_at",
    "store_location",
    "validated",
]

console = Console(stderr=True)

ModelT = TypeVar("ModelT")

#: ``storage.urls.DEFAULT_STORE``, repeated here because importing ``storage.urls`` imports
#: zarr (0.6 s); ``tests/cli`` checks the two agree.
DEFAULT_STORE = "./segflow-data"
#: Set to 1 (or pass ``--debug``) to print full tracebacks with every error.
DEBUG_ENV = "SEGFLOW_DEBUG"

StoreOption = Annotated[str, typer.Option("--store", help="Local path or s3://bucket/prefix.")]
EndpointOption = Annotated[
    str | None,
    typer.Option("--s3-endpoint", envvar="SEGFLOW_S3_ENDPOINT_URL", help="S3 endpoint URL."),
]

CredentialsBlockOption = Annotated[
    str | None,
    typer.Option(
        "--credentials-block",
        envvar="SEGFLOW_CREDENTIALS_BLOCK",
        help="Prefect block holding the S3 credentials: an AwsCredentials block, or a Secret "
        "whose value is a JSON object of fsspec options (default: the AWS environment, "
        "profile or role).",
    ),
]


def endpoint_options(endpoint: str | None) -> dict[str, Any] | None:
    """Storage options that point S3 at ``endpoint`` (None: the default endpoint).

    >>> endpoint_options("http://localhost:9000"), endpoint_options(None)
    ({'endpoint_url': 'http://localhost:9000'}, None)
    """
    return {"endpoint_url": endpoint} if endpoint else None


def debug_enabled() -> bool:
    """Whether errors print their full traceback (``--debug`` or ``SEGFLOW_DEBUG=1``)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def fail(error: Exception | str, *, cause: BaseException | None = None) -> typer.Exit:
    """Print ``error`` on one line and return the exit (status 1) for the caller to raise.

    With :func:`debug_enabled`, the traceback of ``cause`` (default: ``error`` if it is an
    exception) is printed first.
    """
    cause = cause or (error if isinstance(error, BaseException) else None)
    if debug_enabled() and cause is not None:
        traceback.print_exception(cause)
    # Escaped: a message quoting user input ("[x]") is text, not Rich markup.
    console.print(f"[bold red]error:[/] {escape(one_line(error))}", soft_wrap=True, markup=True)
    return typer.Exit(code=1)


def one_line(error: Exception | str) -> str:
    """``error`` as one line: a pydantic validation error becomes ``field: message`` pairs.

    >>> from pydantic import BaseModel, PositiveInt
    >>> class P(BaseModel):
    ...     n: PositiveInt
    >>> try:
    ...     P(n=0)
    ... except ValueError as error:
    ...     print(one_line(error))
    invalid n: Input should be greater than 0 (got 0)
    """
    errors = getattr(error, "errors", None)
    if callable(errors) and type(error).__name__ == "ValidationError":
        parts = []
        for item in errors():
            where = ".".join(str(part) for part in item.get("loc", ()))
            message = str(item.get("msg", "")).removeprefix("Value error, ")
            # Redacted: a refused secret in storage_options must not reach the terminal.
            got = "" if "got" in message else f" (got {redact(item.get('input'))!r})"
            parts.append(f"invalid {where}: {message}{got}" if where else message + got)
        return "; ".join(parts)
    return " ".join(str(error).split())


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Parameters from a JSON, YAML or TOML file (the same shape as the flow parameters)."""
    if path is None:
        return {}
    try:
        text = path.read_text()
    except OSError as error:
        message = f"Cannot read config file {str(path)!r}: {error.strerror}."
        raise fail(message, cause=error) from None
    try:
        data = _parse(text, path.suffix)
    except ValueError as error:
        kind = _FORMATS.get(path.suffix, "JSON")
        message = f"Config file {str(path)!r} is not valid {kind}: {error}"
        raise fail(message, cause=error) from None
    if not isinstance(data, dict):
        raise fail(
            f"Config file {str(path)!r} must hold a mapping of parameters, "
            f"got {type(data).__name__}."
        )
    return data


_FORMATS = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML"}


def _parse(text: str, suffix: str) -> Any:
    """The document ``text`` in the format its file's ``suffix`` names (JSON by default).

    Raises:
        ValueError: The format's error, as one line: what is wrong and where.
    """
    kind = _FORMATS.get(suffix, "JSON")
    if kind == "YAML":
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ValueError(f"{problem}{where}") from error
    if kind == "TOML":
        import tomllib

        return tomllib.loads(text)  # TOMLDecodeError is a ValueError naming line and column
    return json.loads(text)  # so is JSONDecodeError


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (options given on the command line) into ``base``."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = merge(merged.get(key) or {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def store_location(
    url: str, s3_endpoint: str | None, credentials_block: str | None = None
) -> dict[str, Any]:
    """A store's (or checkpoints') location as config fields: URL, endpoint, credentials block.

    >>> store_location("s3://b/p", "http://localhost:9000", "prod-s3")
    {'url': 's3://b/p', 'storage_options': {'endpoint_url': 'http://localhost:9000'},
     'credentials_block': 'prod-s3'}
    """
    return {
        "url": url,
        "storage_options": endpoint_options(s3_endpoint),
        "credentials_block": credentials_block,
    }


def locations(
    store: str, checkpoints: str, s3_endpoint: str | None, credentials_block: str | None = None
) -> dict[str, Any]:
    """The store and checkpoint locations of a run, as parameter overrides."""
    return {
        "store": store_location(store, s3_endpoint, credentials_block),
        "checkpoints": store_location(checkpoints, s3_endpoint, credentials_block),
    }


def open_store_at(url: str, s3_endpoint: str | None, credentials_block: str | None = None) -> Store:
    """Open the store at ``url`` as a run would (credentials from the block, if named)."""
    import tasks  # noqa: F401  (registers the reader of Prefect's credentials blocks)
    from segflow.config import StoreConfig

    return validated(StoreConfig, store_location(url, s3_endpoint, credentials_block)).open()


def validated(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Build the parameter model ``model`` from ``data``; exit with the error if invalid."""
    try:
        return model(**data)
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
