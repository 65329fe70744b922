"""A real Dask cluster for tests: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1.

Like a deployment, and unlike ``LocalCluster``, every part is a separate process started from
the venv's ``dask`` command line, so a test can SIGKILL a worker and see what a real fault
does. Workers run from the project root (the editable install and ``tests.*`` import), with:

- the test's Prefect API in ``PREFECT_API_URL``. prefect-dask ships the flow's settings
  context with each task (``prefect.context.serialize_context``), which already names the
  harness's server; the variable also covers anything a worker does outside a task run;
- the moto S3 server's fake credentials in ``AWS_*`` (s3fs reads them; configs refuse secrets
  in ``storage_options``);
- one thread each (``--nthreads 1``) and quiet, bounded TensorFlow.

Fixtures:

- ``dask_prefect_server``: Prefect's test harness, session-wide (a temporary API server).
- ``dask_cluster_session``: the session's scheduler and two workers.
- ``dask_cluster``: the same cluster for one test, with every killed worker replaced first,
  so a test may kill workers freely. Use ``.address``, ``.workers`` (pids),
  ``.kill_worker(i)``, ``.wait_for_workers(n)``.

Set ``SEGFLOW_KEEP_DASK_LOGS=1`` to keep the processes' output (its folder is in
``DaskCluster.logs``); ``DaskCluster.log_tail()`` gives its end for a failure message.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 2
START_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _dask_command() -> list[str]:
    """The venv's ``dask`` command line (the interpreter's own, never one on PATH)."""
    script = Path(sys.executable).with_name("dask")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "distributed.cli.dask_spec"]  # pragma: no cover


def worker_environment(prefect_api_url: str | None) -> dict[str, str]:
    """The environment of the cluster's processes: this one plus the test's services."""
    env = dict(os.environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_ENABLE_ONEDNN_OPTS": "0",
        }
    )
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


@dataclass
class DaskCluster:
    """A scheduler and worker processes on 127.0.0.1, started with the ``dask`` CLI.

    Attributes:
        address: The scheduler's address, ``tcp://127.0.0.1:<port>``.
        env: The environment every process of the cluster runs with.
        logs: The directory holding each process's output (read it when a test fails).
    """

    address: str
    env: dict[str, str]
    logs: Path
    scheduler: subprocess.Popen[bytes] | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _started: int = 0

    @property
    def workers(self) -> list[int]:
        """The pids of the worker processes, in start order (killed ones included)."""
        return [p.pid for p in self.processes]

    def alive(self) -> list[int]:
        """Indexes of the worker processes still running."""
        return [i for i, p in enumerate(self.processes) if p.poll() is None]

    def start_scheduler(self) -> None:
        port = int(self.address.rsplit(":", 1)[1])
        cmd = [*_dask_command(), "scheduler", "--host", "127.0.0.1", "--port", str(port)]
        self.scheduler = self._spawn([*cmd, "--dashboard-address", ":0"], "scheduler")

    def start_worker(self) -> int:
        """Start one more worker process; returns its index in :attr:`workers`."""
        self._started += 1
        name = f"w{self._started}"
        local = self.logs / f"{name}-space"
        cmd = [*_dask_command(), "worker", self.address, "--nthreads", "1", "--nworkers", "1"]
        cmd += ["--host", "127.0.0.1", "--name", name, "--no-nanny", "--no-dashboard"]
        cmd += ["--local-directory", str(local), "--memory-limit", "0"]
        self.processes.append(self._spawn(cmd, name))
        return len(self.processes) - 1

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker ``i`` (no chance to say goodbye to the scheduler); returns its pid."""
        proc = self.processes[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return proc.pid

    def client(self):  # type: ignore[no-untyped-def]
        """A ``distributed.Client`` of this cluster (close it when done)."""
        from distributed import Client

        return Client(self.address, timeout=START_TIMEOUT_S)

    def wait_for_workers(self, n: int, timeout: float = START_TIMEOUT_S) -> None:
        """Block until the scheduler knows exactly ``n`` workers."""
        with self.client() as client:
            deadline = time.monotonic() + timeout
            while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
                self._check_processes()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{n} Dask workers not up after {timeout:.0f} s: {self}")
                time.sleep(0.2)

    def revive(self) -> None:
        """Replace killed workers so that :data:`WORKERS` run, and wait until they joined."""
        for _ in range(WORKERS - len(self.alive())):
            self.start_worker()
        self.processes = [p for p in self.processes if p.poll() is None]
        self.wait_for_workers(len(self.processes))

    def stop(self) -> None:
        """Terminate every process (workers first), then kill what did not exit."""
        procs = [*self.processes, *([self.scheduler] if self.scheduler else [])]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of every process's output, for failure messages."""
        out = []
        for path in sorted(self.logs.glob("*.log")):
            out.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(out)

    def _spawn(self, cmd: list[str], name: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "wb") as log:
            return subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _check_processes(self) -> None:
        if self.scheduler is not None and self.scheduler.poll() is not None:
            raise RuntimeError(f"Dask scheduler exited:\n{self.log_tail()}")

    def __str__(self) -> str:
        return f"DaskCluster({self.address}, workers={self.workers}, alive={self.alive()})"


def start_cluster(workers: int, prefect_api_url: str | None) -> DaskCluster:
    """Start a scheduler and ``workers`` worker processes; wait until all joined."""
    logs = Path(tempfile.mkdtemp(prefix="segflow-dask-"))
    address = f"tcp://127.0.0.1:{_free_port()}"
    cluster = DaskCluster(address, worker_environment(prefect_api_url), logs)
    try:
        cluster.start_scheduler()
        for _ in range(workers):
            cluster.start_worker()
        cluster.wait_for_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def dask_prefect_server() -> Iterator[str]:
    """Prefect's test harness for the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield str(PREFECT_API_URL.value())


@pytest.fixture(scope="session")
def dask_cluster_session(dask_prefect_server: str) -> Iterator[DaskCluster]:
    """A scheduler and two one-thread worker processes for the whole session."""
    cluster = start_cluster(WORKERS, dask_prefect_server)
    try:
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get("SEGFLOW_KEEP_DASK_LOGS"):
            shutil.rmtree(cluster.logs, ignore_errors=True)


@pytest.fixture
def dask_cluster(dask_cluster_session: DaskCluster) -> DaskCluster:
    """The session's cluster with two live workers (killed ones replaced before the test)."""
    dask_cluster_session.revive()
    return dask_cluster_session
