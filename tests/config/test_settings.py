import dataclasses

import pytest

from config.celery import TASK_ROUTES, celery_config
from config.settings import ALL_QUEUES, Settings, load_settings


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
