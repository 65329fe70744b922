"""What every command shares: the console, common options, errors, parameter files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from segflow.errors import SegflowError

__all__ = [
    "EndpointOption",
    "StoreOption",
    "console",
    "endpoint_options",
    "fail",
    "load_config_file",
    "locations",
    "merge",
    "validated",
]

console = Console(stderr=True)

ModelT = TypeVar("ModelT")

StoreOption = Annotated[str, typer.Option("--store", help="Local path or s3://bucket/prefix.")]
EndpointOption = Annotated[
    str | None,
    typer.Option("--s3-endpoint", envvar="SEGFLOW_S3_ENDPOINT_URL", help="S3 endpoint URL."),
]


def endpoint_options(endpoint: str | None) -> dict[str, Any] | None:
    """Storage options that point S3 at ``endpoint`` (None: the default endpoint).

    >>> endpoint_options("http://localhost:9000"), endpoint_options(None)
    ({'endpoint_url': 'http://localhost:9000'}, None)
    """
    return {"endpoint_url": endpoint} if endpoint else None


def fail(error: Exception | str) -> typer.Exit:
    """Print ``error`` on one line and return the exit (status 1) for the caller to raise."""
    console.print(f"[bold red]error:[/] {one_line(error)}", soft_wrap=True, markup=True)
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
            got = "" if "got" in message else f" (got {item.get('input')!r})"
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
        raise fail(f"Cannot read config file {str(path)!r}: {error.strerror}.") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    elif path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise fail(
            f"Config file {str(path)!r} must hold a mapping of parameters, "
            f"got {type(data).__name__}."
        )
    return data


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` (options given on the command line) into ``base``."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            merged[key] = merge(merged.get(key) or {}, value)
        elif value is not None:
            merged[key] = value
    return merged


def locations(store: str, checkpoints: str, s3_endpoint: str | None) -> dict[str, Any]:
    """The store and checkpoint locations of a run, as parameter overrides."""
    options = endpoint_options(s3_endpoint)
    return {
        "store": {"url": store, "storage_options": options},
        "checkpoints": {"url": checkpoints, "storage_options": options},
    }


def validated(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """Build the parameter model ``model`` from ``data``; exit with the error if invalid."""
    try:
        return model(**data)
    except (ValueError, SegflowError) as error:
        raise fail(error) from None
