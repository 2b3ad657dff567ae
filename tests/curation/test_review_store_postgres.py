"""The review store on a real PostgreSQL server (started here from Debian's postgresql package).

Skipped, with the reason, when no server can be started: PostgreSQL not installed (apt-get install
postgresql), psycopg missing (pip install "psycopg[binary]"), or initdb/pg_ctl failing. Set
CURATION_TEST_POSTGRES_URL=postgresql+psycopg://user@host:port/db to use an existing server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid

import pytest

from curation.store.review_store import ReviewStore
from tests.curation.review_scenarios import basic_flow, concurrent_reviews


def _tool(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser`: cannot start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--", *args]


@pytest.fixture(scope="module")
def postgres_server():
    """A base URL (without database) of a PostgreSQL server for these tests."""
    pytest.importorskip("psycopg", reason='psycopg is not installed (pip install "psycopg[binary]")')
    if os.environ.get("CURATION_TEST_POSTGRES_URL"):
        yield os.environ["CURATION_TEST_POSTGRES_URL"].rsplit("/", 1)[0]
        return
    initdb, pg_ctl = _tool("initdb"), _tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="curation-pg-")
    data, port = os.path.join(root, "data"), _free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        subprocess.run(_as_postgres([initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True, timeout=120)
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-t", "60", "-o",
                                     f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]),
                       check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError, KeyError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc} {detail.decode(errors='replace')[-300:]}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_store(postgres_server):
    import psycopg

    name = f"curation_{uuid.uuid4().hex[:10]}"
    plain = postgres_server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{plain}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    store = ReviewStore.open(f"{postgres_server}/{name}")
    yield store
    store.close()


def test_store_flow_on_postgresql(pg_store):
    basic_flow(pg_store)


def test_many_threads_saving_reviews_at_once_on_postgresql(pg_store):
    counts = concurrent_reviews(pg_store, n_annotators=12, n_pairs=3)
    assert counts["saved"] == counts["reviews"] == 36


def test_append_only_tables_on_postgresql(pg_store):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    basic_flow(pg_store)
    with pytest.raises(DBAPIError, match="append-only"):
        with pg_store.db.engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_log"))
