"""A local S3 API server (moto) for tests, benchmarks and demos.

The server runs in a daemon thread of the calling process and listens on 127.0.0.1 on a free
port::

    from tests.s3server import start_s3_server

    with start_s3_server() as server:
        server.create_bucket("segflow")
        store = open_store("s3://segflow/run-1", storage_options=server.storage_options)

Run ``python -m tests.s3server`` to keep one running and print its endpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: moto refuses ``CreateBucket`` with a location constraint of us-east-1, so use another region.
REGION = "eu-west-1"
#: moto accepts any credentials; fixed fake ones keep botocore from looking for real ones.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"

_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _OneRequestAtATime:
    """WSGI middleware that serialises requests.

    moto checks ``If-None-Match: *`` and then stores the object as two separate steps, so two
    concurrent conditional PUTs could both succeed. Real S3 makes that atomic; serving one
    request at a time gives the same guarantee for tests.
    """

    def __init__(self, app: _WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            # Consume the body inside the lock: the request is only done once it is produced.
            return list(self._app(environ, start_response))


@dataclass
class S3Server:
    """A running moto S3 server. Stop it with :meth:`stop` or use it as a context manager."""

    endpoint_url: str
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec/s3fs options that reach this server (pass to ``open_store``)."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"region_name": REGION},
        }

    def client(self) -> Any:
        """Return a boto3 S3 client for this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` and return its name."""
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return name

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> S3Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_s3_server(host: str = "127.0.0.1", port: int = 0) -> S3Server:
    """Start a moto S3 server in a daemon thread.

    Args:
        host: The address to listen on.
        port: The port; 0 picks a free one.

    Returns:
        The running server; its ``endpoint_url`` holds the actual port.
    """
    # moto is imported here so that importing this module stays cheap.
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """Skip the per-request access log line (errors are still logged)."""

    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return S3Server(f"http://{bound_host}:{bound_port}", server, thread)


def main() -> None:
    """Run a server until interrupted, printing its endpoint and credentials."""
    server = start_s3_server()
    print(f"S3 endpoint: {server.endpoint_url}  (key {ACCESS_KEY!r}, region {REGION!r})")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
