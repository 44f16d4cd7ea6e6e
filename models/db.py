"""Engine and session lifecycle. session_scope() is the one place that commits or rolls back."""
from __future__ import annotations

import select
import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings


def normalise_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def make_engine(database_url: str, *, pool_size: int = 5, connect_timeout: int = 5,
                statement_timeout_ms: int | None = None, lock_timeout_ms: int | None = None,
                autocommit: bool = False) -> Engine:
    """An engine whose connections give up connecting after `connect_timeout` seconds, notice a dead peer
    (TCP keepalives), and carry the given server-side statement and lock-wait limits (None or 0: none).
    `autocommit`: every statement commits on its own (a pool of its own: no connection switches mode).

    JIT compilation is off on every connection: the planner turns it on by estimated cost, and a merge
    of a thousand staged rows whose estimate crosses `jit_above_cost` (it does when a join's row estimate
    balloons) spent 0.46 s compiling for a statement that runs in 20 ms. Nothing here runs long enough
    for compiled expressions to repay that."""
    options = ["-c jit=off"]
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if lock_timeout_ms:
        options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
    connect_args = {"application_name": "fieldsync", "connect_timeout": max(1, int(connect_timeout)),
                    "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    if options:
        connect_args["options"] = " ".join(options)
    engine = create_engine(
        normalise_url(database_url),
        pool_size=pool_size,
        max_overflow=10,
        pool_timeout=10,
        future=True,
        connect_args=connect_args,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )
    _ping_after_idle(engine)
    _forget_temp_tables_on_rollback(engine)
    return engine


def _forget_temp_tables_on_rollback(engine: Engine) -> None:
    """models.engine creates its staging temp tables once per connection and notes it in the
    connection's info: "pending" until the creating transaction commits, then "ready". A rollback (of a
    transaction or a savepoint, or the pool's reset of an open one) undoes a pending creation, so the note
    goes and the next use creates the tables again."""
    key = "fieldsync_stage_tables"

    def forget_pending(info, *, transaction_ended: bool = True) -> None:
        if info.get(key) == "pending":
            info.pop(key, None)
        if transaction_ended:  # rows staged under a released savepoint stay until the transaction ends
            info.pop("fieldsync_staged_in", None)

    @event.listens_for(engine, "commit")
    def _committed(conn):
        info = conn.connection.info
        if info.get(key) == "pending":
            info[key] = "ready"

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn):
        forget_pending(conn.connection.info)

    @event.listens_for(engine, "rollback_savepoint")
    def _savepoint_rolled_back(conn, name, context):
        forget_pending(conn.connection.info, transaction_ended=False)

    @event.listens_for(engine.pool, "reset")
    def _reset(dbapi_connection, record, reset_state):
        forget_pending(record.info)


# A pooled connection that sat idle this long is pinged before it is handed out (a server restart while
# it slept would otherwise fail the request that takes it); one in steady use is not, which saves a
# round trip on every checkout. A connection that breaks in use is invalidated by SQLAlchemy as usual.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle_from(dbapi_connection, record):
        record.info["fieldsync_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy):
        since = record.info.get("fieldsync_idle_since")
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:
            alive = False
        if not alive:
            raise DisconnectionError("the pooled connection is gone")  # the pool connects afresh


def engine_for(settings: Settings, role: str, *, pool_size: int = 5, autocommit: bool = False) -> Engine:
    """The engine of a web process (short statement and lock limits: a client waits on them) or of a
    worker (a long statement limit: bulk applies and dumps run long statements)."""
    if role == "web":
        return make_engine(settings.database_url, pool_size=pool_size,
                           connect_timeout=settings.db_connect_timeout_seconds,
                           statement_timeout_ms=settings.db_statement_timeout_ms,
                           lock_timeout_ms=settings.db_lock_timeout_ms, autocommit=autocommit)
    if role == "worker":
        return make_engine(settings.database_url, pool_size=pool_size,
                           connect_timeout=settings.db_connect_timeout_seconds,
                           statement_timeout_ms=settings.worker_statement_timeout_ms)
    raise ValueError(f"unknown engine role {role!r}")


def probe_database(engine: Engine, timeout: float = 2.0) -> None:
    """Connect and run `SELECT 1` on a fresh connection, giving up after `timeout` seconds in all (a frozen
    or unreachable server included: the wait is on the socket, not on the server's own timers). Raises
    on failure; nothing is left blocked or open."""
    import psycopg2
    import psycopg2.extensions

    url = engine.url
    kwargs = url.translate_connect_args(username="user", database="dbname")
    kwargs.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    deadline = time.monotonic() + timeout
    conn = psycopg2.connect(async_=True, application_name="fieldsync-health",
                            options=f"-c statement_timeout={int(timeout * 1000)}", **kwargs)
    try:
        _wait(conn, deadline)
        cur = conn.cursor()
        cur.execute("SELECT 1")
        _wait(conn, deadline)
        if cur.fetchone() != (1,):
            raise RuntimeError("unexpected answer to SELECT 1")
    finally:
        conn.close()


def _wait(conn, deadline: float) -> None:
    import psycopg2.extensions as ext
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("PostgreSQL did not answer in time")
        if state == ext.POLL_READ:
            ready = select.select([conn.fileno()], [], [], left)[0]
        elif state == ext.POLL_WRITE:
            ready = select.select([], [conn.fileno()], [], left)[1]
        else:
            raise RuntimeError(f"unexpected poll state {state}")
        if not ready and deadline - time.monotonic() <= 0:
            raise TimeoutError("PostgreSQL did not answer in time")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work: commit when the block ends normally, roll back when it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def lazy_commit(session: Session) -> None:
    """The current transaction's commit will not wait for the WAL flush. For a write nobody is told of
    yet: whatever later tells someone commits durably, or calls models.jobs.make_durable first."""
    session.execute(text("SELECT set_config('synchronous_commit', 'off', true)"))

