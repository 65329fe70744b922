"""A local S3 API server (moto) for tests, benchmarks and demos.

The server runs in a daemon thread of the calling process and listens on 127.0.0.1 on a free
port::

    from tests.s3server import start_s3_server

    with start_s3_server() as server, server.aws_environment():
        server.create_bucket("segflow")
        store = open_store("s3://segflow/run-1", storage_options=server.storage_options)

Its ``storage_options`` hold no secret (configs refuse them): credentials come from the AWS
environment variables, which the ``s3_moto_server`` fixture sets, or from a credentials block.
The server records the access key id that signed each request (:attr:`S3Server.access_keys`),
so a test can tell which credentials reached it.

Run ``python -m tests.s3server`` to keep one running and print its endpoint.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: moto refuses ``CreateBucket`` with a location constraint of us-east-1, so use another region.
REGION = "eu-west-1"
#: moto accepts any credentials; fixed fake ones keep botocore from looking for real ones.
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
#: What :attr:`S3Server.access_keys` records for a request that no key signed.
UNSIGNED = "(unsigned)"
#: The access key id in a SigV4 ``Authorization`` header or presigned URL.
_CREDENTIAL = re.compile(r"Credential=([^/,\s&]+)/")

_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _OneRequestAtATime:
    """WSGI middleware that serialises requests and records who signed them.

    moto checks ``If-None-Match: *`` and then stores the object as two separate steps, so two
    concurrent conditional PUTs could both succeed. Real S3 makes that atomic; serving one
    request at a time gives the same guarantee for tests.
    """

    def __init__(self, app: _WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.access_keys: set[str] = set()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        signed = f"{environ.get('HTTP_AUTHORIZATION', '')} {environ.get('QUERY_STRING', '')}"
        found = _CREDENTIAL.search(signed.replace("%2F", "/"))
        with self._lock:
            self.access_keys.add(found.group(1) if found else UNSIGNED)
            # Consume the body inside the lock: the request is only done once it is produced.
            return list(self._app(environ, start_response))


@dataclass
class S3Server:
    """A running moto S3 server. Stop it with :meth:`stop` or use it as a context manager."""

    endpoint_url: str
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _app: _OneRequestAtATime = field(repr=False)

    @property
    def storage_options(self) -> dict[str, Any]:
        """The fsspec/s3fs options that reach this server, without credentials.

        Pass them to ``open_store`` or a config's ``storage_options``; the credentials come
        from the AWS environment (:meth:`aws_environment`) or a credentials block.
        """
        return {"endpoint_url": self.endpoint_url, "client_kwargs": {"region_name": REGION}}

    @property
    def access_keys(self) -> set[str]:
        """The access key ids that signed requests since :meth:`forget_access_keys` (a copy).

        A request without a signature is recorded as :data:`UNSIGNED`.
        """
        return set(self._app.access_keys)

    def forget_access_keys(self) -> None:
        """Start recording :attr:`access_keys` afresh."""
        self._app.access_keys.clear()

    @staticmethod
    def environment() -> dict[str, str]:
        """The AWS variables that make botocore use the server's fake credentials and region."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @contextmanager
    def aws_environment(self) -> Iterator[None]:
        """Set :meth:`environment` (and unset a session token, profile or endpoint) inside."""
        names = [*self.environment(), "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"]
        saved = {name: os.environ.get(name) for name in names}
        for name in names[len(self.environment()) :]:
            os.environ.pop(name, None)
        os.environ.update(self.environment())
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

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
    return S3Server(f"http://{bound_host}:{bound_port}", server, thread, app)


def main() -> None:
    """Run a server until interrupted, printing its endpoint and credentials."""
    server = start_s3_server()
    exports = " ".join(f"{name}={value}" for name, value in server.environment().items())
    print(f"S3 endpoint: {server.endpoint_url}\nexport {exports}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
