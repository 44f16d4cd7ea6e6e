import dataclasses

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from config.celery import TASK_ROUTES, celery_config
from config.settings import ALL_QUEUES, MissingSecret, Settings, load_settings, require_secret


def test_load_settings_reads_only_the_given_mapping():
    s = load_settings({"DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://r", "SYNC_WAIT_SECONDS": "3.5",
                       "MAX_BODY_BYTES": "1024", "FIELDSYNC_DATA_DIR": "/tmp/d", "LOG_LEVEL": "debug"})
    assert s.database_url == "postgresql://x/y"
    assert s.redis_url == "redis://r"
    assert s.sync_wait_seconds == 3.5
    assert s.max_body_bytes == 1024
    assert str(s.data_dir) == "/tmp/d"
    assert s.log_level == "DEBUG"


def test_missing_urls_mean_embedded():
    s = load_settings({})
    assert s.database_url is None and s.redis_url is None
    assert s.sync_wait_seconds == 20


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().database_url = "x"


def test_celery_config_is_safe_for_redelivery():
    s = Settings(redis_url="redis://localhost/0")
    conf = celery_config(s)
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    assert conf["result_backend"] is None
    assert conf["broker_transport_options"]["visibility_timeout"] > conf["task_time_limit"]
    assert {q.name for q in conf["task_queues"]} == set(ALL_QUEUES)
    assert {route["queue"] for route in TASK_ROUTES.values()} == set(ALL_QUEUES)


def test_each_dialects_options_come_from_its_prefix():
    from config.settings import DIALECTS
    settings = load_settings({"MSUPPLY_ROUTING_FILE": "/etc/routing.json", "MSUPPLY_V1_MAP_FILE": "",
                              "DIGIT_SOMETHING": "x", "UNRELATED": "y"})
    assert settings.dialects == DIALECTS
    assert settings.option("msupply", "routing_file") == "/etc/routing.json"
    assert settings.option("msupply", "v1_map_file") is None  # empty means unset
    assert settings.option("digit", "something") == "x"
    assert settings.option("synkronus", "anything", "default") == "default"


def test_a_deployment_may_serve_fewer_dialects_but_not_unknown_ones():
    assert load_settings({"FIELDSYNC_DIALECTS": "synkronus, digit"}).dialects == ("synkronus", "digit")
    with pytest.raises(ValueError, match="unknown dialects: nosuch"):
        load_settings({"FIELDSYNC_DIALECTS": "synkronus,nosuch"})


def test_timeouts_come_from_the_environment():
    s = load_settings({"DB_CONNECT_TIMEOUT_SECONDS": "3", "DB_STATEMENT_TIMEOUT_MS": "1500",
                       "DB_LOCK_TIMEOUT_MS": "700", "WORKER_STATEMENT_TIMEOUT_MS": "90000"})
    assert (s.db_connect_timeout_seconds, s.db_statement_timeout_ms, s.db_lock_timeout_ms,
            s.worker_statement_timeout_ms) == (3, 1500, 700, 90000)
    d = load_settings({})
    assert d.db_statement_timeout_ms == 30000 and d.worker_statement_timeout_ms > d.db_statement_timeout_ms


def _server_limits(session_factory):
    session = session_factory()
    try:
        return tuple(session.execute(text(f"SELECT current_setting('{name}')")).scalar_one()
                     for name in ("statement_timeout", "lock_timeout"))
    finally:
        session.close()


def test_web_sessions_have_short_limits_and_worker_sessions_long_ones(settings, broker, redis_client):
    from web.app import create_app
    from workers.runtime import Runtime
    mine = settings.replace(db_statement_timeout_ms=1500, db_lock_timeout_ms=700, worker_statement_timeout_ms=90000)
    app = create_app(mine, celery_app=broker, redis_client=redis_client)
    assert _server_limits(app.extensions["fieldsync_sessions"]) == ("1500ms", "700ms")
    runtime = Runtime(mine)
    assert _server_limits(runtime.sessions()) == ("90s", "0")
    # and the web's limit really ends a statement that runs too long
    session = app.extensions["fieldsync_sessions"]()
    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            session.execute(text("SELECT pg_sleep(5)"))
    finally:
        session.close()
    runtime.engine.dispose()


def test_no_session_compiles_a_statement_just_in_time(settings, broker, redis_client):
    """A statement whose estimated cost crosses jit_above_cost would otherwise spend a large part of a
    second compiling (a big merge did): no web or worker session ever JIT-compiles."""
    from web.app import create_app
    from workers.runtime import Runtime
    costly = ("EXPLAIN (ANALYZE, FORMAT JSON) SELECT sum(a * b) FROM generate_series(1, 2000) a, "
              "generate_series(1, 2000) b")
    app = create_app(settings, celery_app=broker, redis_client=redis_client)
    runtime = Runtime(settings)
    try:
        for factory in (app.extensions["fieldsync_sessions"], runtime.sessions()):
            session = factory()
            try:
                assert session.execute(text("SELECT current_setting('jit')")).scalar_one() == "off"
                plan = session.execute(text(costly)).scalar_one()[0]
                assert plan["Plan"]["Total Cost"] > 100000  # past jit_above_cost's default: JIT would run
                assert "JIT" not in plan
            finally:
                session.close()
    finally:
        runtime.engine.dispose()


def test_server_processes_refuse_the_default_signing_key():
    with pytest.raises(MissingSecret, match="JWT_SECRET"):
        require_secret(load_settings({"DATABASE_URL": "postgresql://x/y"}))
    with pytest.raises(MissingSecret):
        require_secret(Settings(jwt_secret=""))
    assert require_secret(Settings(jwt_secret="s" * 40)).jwt_secret == "s" * 40
