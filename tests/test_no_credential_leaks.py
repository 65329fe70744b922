"""S3 credentials from Prefect blocks, and proof that none leaks from a full run.

A run (ingest -> train a tiny model -> predict, through the flows) on the local S3 server takes
its credentials from a ``Secret`` block, with none in the environment; then the block's key
id and secret are looked for everywhere the run left something: every object in the bucket
(Zarr attributes and metadata, checkpoint metadata, chunks), the Prefect flow runs and task
runs (parameters, states), artifacts, the logs sent to Prefect, what Python logged and what
the process printed. Also: the resolver (``tasks.credentials``) and the refusal of secrets in
``storage_options``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import s3fs
from pydantic import ValidationError

import tasks  # noqa: F401  (registers the block resolver, as every task's process does)
from segflow.config import (
    CheckpointConfig,
    IngestParams,
    ModelConfig,
    PredictParams,
    StoreConfig,
    StreamConfig,
    TrainParams,
)
from segflow.errors import ConfigError
from segflow_cli.common import one_line, open_store_at
from storage.credentials import refuse_secrets
from storage.predictions import PredictionRepository
from storage.s3 import S3Store
from tasks.credentials import block_options, forget_blocks
from tests.prefect_harness import shared_prefect_harness
from tests.s3server import S3Server

#: Recognisable fake credentials (moto accepts any); found anywhere, they leaked.
FAKE_KEY = f"AKIALEAK{uuid.uuid4().hex[:12].upper()}"
FAKE_SECRET = f"leak-secret-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """Prefect's temporary server, shared with the other directories (tests/prefect_harness.py)."""
    with shared_prefect_harness():
        yield


@pytest.fixture()
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS credentials in the environment or in files: only a block can reach S3."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, "/nonexistent/segflow-test")
    forget_blocks()


def _save_secret(name: str, value: Any) -> None:
    from prefect.blocks.system import Secret

    Secret(value=value).save(name, overwrite=True)


def _save_aws(name: str, **fields: Any) -> None:
    from prefect_aws import AwsCredentials

    AwsCredentials(**fields).save(name, overwrite=True)


# -- the full run ----------------------------------------------------------------------------


def _upload(fs: s3fs.S3FileSystem, landing: str) -> None:
    rng = np.random.default_rng(7)
    for i, length in enumerate((19, 26)):
        frames = rng.normal(size=(length, 3)).astype("float32")
        with fs.open(f"{landing}/cam{i}.npy", "wb") as f:
            np.save(f, frames)
        with fs.open(f"{landing}/cam{i}.labels.npy", "wb") as f:
            np.save(f, (frames[:, 0] > 0).astype("int8"))


async def _prefect_records() -> list[str]:
    """Every flow run, task run, artifact and log line the Prefect API holds, as JSON text."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        flow_runs = await client.read_flow_runs()
        groups = [
            flow_runs,
            await client.read_task_runs(),
            await client.read_artifacts(),
            await client.read_logs(),
        ]
    assert {run.name for run in flow_runs} and len(groups[1]) > 0
    return [item.model_dump_json() for group in groups for item in group]


@pytest.mark.usefixtures("prefect_api", "no_env_credentials")
def test_a_full_run_leaks_no_credential(
    s3_moto_server: S3Server,
    s3_bucket: str,
    s3_storage_options: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from flows.ingest import ingest
    from flows.predict import predict
    from flows.train import train

    # The project's own loggers and Prefect's at DEBUG; libraries at INFO (botocore's DEBUG
    # prints signed request headers, with the key id: a library's opt-in trace, not ours).
    caplog.set_level(logging.INFO)
    for name in ("segflow", "storage", "tasks", "flows", "prefect"):
        caplog.set_level(logging.DEBUG, logger=name)
    block = f"leak-{uuid.uuid4().hex[:8]}"
    _save_secret(block, {"key": FAKE_KEY, "secret": FAKE_SECRET})
    root = f"s3://{s3_bucket}/leak-{uuid.uuid4().hex[:8]}"
    s3_moto_server.forget_access_keys()
    raw = s3fs.S3FileSystem(
        **s3_storage_options, key=FAKE_KEY, secret=FAKE_SECRET, skip_instance_cache=True
    )
    _upload(raw, f"{root}/landing")

    located = {"storage_options": s3_storage_options, "credentials_block": block}
    store = StoreConfig(url=f"{root}/store", **located)
    checkpoints = CheckpointConfig(url=f"{root}/ckpt", every_steps=2, **located)
    stream = StreamConfig(lanes=2, segment_length=8)
    ingested = ingest(
        IngestParams(sources=[f"{root}/landing/"], store=store, write={"segment_length": 8}),
        return_state=True,
    ).result()
    assert ingested.summary.written == 2
    train(
        TrainParams(
            store=store,
            checkpoints=checkpoints,
            model=ModelConfig(frame_shape=(3,), lstm_units=[4], task="binary"),
            stream=stream,
            epochs=1,
            model_tag="leak",
        )
    )
    predicted = predict(
        PredictParams(store=store, checkpoints=checkpoints, model_tag="leak", stream=stream)
    )
    assert predicted.predicted == 2
    reader = S3Store(
        f"{root}/store",
        storage_options={**s3_storage_options, "key": FAKE_KEY, "secret": FAKE_SECRET},
    )
    assert PredictionRepository(reader).read("leak", "cam1").shape == (26, 1)
    # Every request of the run was signed with the block's key: nothing used other credentials.
    assert s3_moto_server.access_keys == {FAKE_KEY}

    objects = raw.find(root)
    assert any(path.endswith("zarr.json") for path in objects)
    assert any("/ckpt/" in path for path in objects)
    places: dict[str, str] = {path: raw.cat_file(path).decode("latin-1") for path in objects}
    for i, record in enumerate(asyncio.run(_prefect_records())):
        places[f"prefect record {i}"] = record
    places["python logs"] = "\n".join(r.getMessage() for r in caplog.records)
    out, err = capfd.readouterr()
    places["stdout"], places["stderr"] = out, err
    for where, text in places.items():
        for secret in (FAKE_KEY, FAKE_SECRET):
            assert secret not in text, f"{secret[:8]}... leaked into {where}"


# -- the resolver ----------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api", "no_env_credentials")
def test_aws_credentials_block_becomes_s3fs_options(
    s3_moto_server: S3Server, s3_store_url: str
) -> None:
    name = f"aws-{uuid.uuid4().hex[:8]}"
    _save_aws(
        name,
        aws_access_key_id=FAKE_KEY,
        aws_secret_access_key=FAKE_SECRET,
        region_name="eu-west-1",
        aws_client_parameters={"endpoint_url": s3_moto_server.endpoint_url},
    )
    expected = {
        "key": FAKE_KEY,
        "secret": FAKE_SECRET,
        "endpoint_url": s3_moto_server.endpoint_url,
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert block_options(name) == expected
    assert block_options(f"aws-credentials/{name}") == expected  # Prefect's slug form
    # A config naming only the block reaches the server with the block's key.
    s3_moto_server.forget_access_keys()
    StoreConfig(url=s3_store_url, credentials_block=name).open().write_bytes("k", b"v")
    store = open_store_at(s3_store_url, None, name)  # what `--credentials-block` opens
    assert store.read_bytes("k") == b"v"
    assert s3_moto_server.access_keys == {FAKE_KEY}


@pytest.mark.usefixtures("prefect_api", "no_env_credentials")
def test_secret_block_holds_fsspec_options_and_is_read_again_after_forgetting() -> None:
    name = f"secret-{uuid.uuid4().hex[:8]}"
    _save_secret(name, json.dumps({"key": "k1", "secret": "s1"}))  # a JSON string works too
    assert block_options(name) == {"key": "k1", "secret": "s1"}
    _save_secret(name, {"key": "k2", "secret": "s2"})
    assert block_options(name)["key"] == "k1"  # kept for CACHE_SECONDS
    forget_blocks()
    assert block_options(name)["key"] == "k2"


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize(
    ("make", "reference", "expected"),
    [
        (None, "{name}", r"no such block"),  # nothing of that name
        ("secret-str", "{name}", r"a Secret block holding a str, expected a JSON object"),
        # the wrong type, named with Prefect's slug
        ("minio", "minio-credentials/{name}", r"a MinIOCredentials block, expected an AwsCred"),
        ("aws-role", "{name}", r"assume_role_arn=.*expected keys or a profile"),
    ],
)
def test_unusable_block_is_one_clear_error(make: str | None, reference: str, expected: str) -> None:
    from prefect_aws import MinIOCredentials

    name = f"bad-{uuid.uuid4().hex[:8]}"
    if make == "secret-str":
        _save_secret(name, FAKE_SECRET)
    elif make == "minio":
        MinIOCredentials(minio_root_user=FAKE_KEY, minio_root_password=FAKE_SECRET).save(name)
    elif make == "aws-role":
        _save_aws(name, assume_role_arn="arn:aws:iam::123456789012:role/segflow")
    reference = reference.format(name=name)
    with pytest.raises(ConfigError, match=expected) as error:
        block_options(reference)
    message = str(error.value)
    assert f"credentials_block={reference!r}" in message or "assume_role_arn" in message
    assert "\n" not in message and FAKE_SECRET not in message and FAKE_KEY not in message


def test_without_a_resolver_a_block_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.credentials

    monkeypatch.setattr(storage.credentials, "_resolvers", [])
    with pytest.raises(ConfigError, match=r"credentials_block='prod'.*nothing in this process"):
        StoreConfig(url="s3://b/p", credentials_block="prod").resolved_options()


def test_block_options_merge_over_the_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.credentials

    monkeypatch.setattr(storage.credentials, "_resolvers", [lambda name: {"key": name}])
    config = StoreConfig(
        url="s3://b/p", storage_options={"endpoint_url": "http://s3"}, credentials_block="kb"
    )
    assert config.resolved_options() == {"endpoint_url": "http://s3", "key": "kb"}
    assert config.model_dump()["storage_options"] == {"endpoint_url": "http://s3"}


# -- the refusal -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"key": FAKE_KEY}, "key"),  # s3fs's own names
        ({"endpoint_url": "http://s3", "secret": FAKE_SECRET}, "secret"),
        ({"token": FAKE_SECRET}, "token"),
        ({"client_kwargs": {"aws_secret_access_key": FAKE_SECRET}}, "client_kwargs."),  # nested
        ({"AWS_ACCESS_KEY_ID": FAKE_KEY}, "AWS_ACCESS_KEY_ID"),  # any case
    ],
)
def test_secrets_in_storage_options_are_refused(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError) as error:
        refuse_secrets(options)
    message = str(error.value)
    assert "\n" not in message and named in message and "credentials_block" in message
    assert FAKE_KEY not in message and FAKE_SECRET not in message
    for model in (StoreConfig, CheckpointConfig):
        with pytest.raises(ValidationError) as invalid:
            model(url="s3://b/p", storage_options=options)
        shown = one_line(invalid.value)  # what the command line prints
        assert named in shown and "credentials_block" in shown and "\n" not in shown
        assert FAKE_KEY not in shown and FAKE_SECRET not in shown


def test_options_without_secrets_are_kept() -> None:
    options = {"endpoint_url": "http://s3", "client_kwargs": {"region_name": "eu-west-1"}}
    assert StoreConfig(url="s3://b", storage_options=options).storage_options == options
    assert refuse_secrets({"key": None, "anon": True}) == {"key": None, "anon": True}


def test_a_refused_secret_is_not_echoed_by_pydantic() -> None:
    short = "s3cr3t"  # pydantic shortens a long input in the middle
    with pytest.raises(ValidationError) as invalid:
        StoreConfig(url="s3://b/p", storage_options={"secret": short})
    assert short not in str(invalid.value)


# -- the filesystem cache --------------------------------------------------------------------


def test_a_store_opened_after_the_environment_changed_uses_the_new_credentials(
    s3_moto_server: S3Server,
    s3_store_url: str,
    s3_storage_options: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = "AKIAFIRSTENVKEY00001", "AKIASECONDENVKEY0002"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", first)
    S3Store(s3_store_url, storage_options=s3_storage_options).write_bytes("a", b"1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", second)
    s3_moto_server.forget_access_keys()
    S3Store(s3_store_url, storage_options=s3_storage_options).write_bytes("b", b"2")
    assert s3_moto_server.access_keys == {second}  # fsspec's cache alone would reuse `first`
    block = {**s3_storage_options, "key": FAKE_KEY, "secret": FAKE_SECRET}
    s3_moto_server.forget_access_keys()
    S3Store(s3_store_url, storage_options=block).write_bytes("c", b"3")
    assert s3_moto_server.access_keys == {FAKE_KEY}


# -- the command line ------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api", "no_env_credentials")
def test_the_command_line_opens_a_store_with_a_credentials_block(
    s3_moto_server: S3Server, s3_store_url: str
) -> None:
    from typer.testing import CliRunner

    from segflow_cli.app import app

    name = f"cli-{uuid.uuid4().hex[:8]}"
    _save_secret(name, {"key": FAKE_KEY, "secret": FAKE_SECRET})
    endpoint = ["--s3-endpoint", s3_moto_server.endpoint_url]
    args = ["inspect", "--store", s3_store_url, *endpoint, "--json"]
    s3_moto_server.forget_access_keys()
    runner = CliRunner()
    found = runner.invoke(app, [*args, "--credentials-block", name])
    assert found.exit_code == 0, found.output
    assert '"sequences": []' in found.output
    assert s3_moto_server.access_keys == {FAKE_KEY}  # the block's key, nothing else
    missing = runner.invoke(app, [*args, "--credentials-block", f"{name}-missing"])
    assert missing.exit_code == 1
    lines = [line for line in missing.output.splitlines() if line.strip()]
    assert len(lines) == 1 and f"{name}-missing" in lines[0], missing.output
