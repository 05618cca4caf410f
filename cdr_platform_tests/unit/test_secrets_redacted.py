"""Secrets are never printed: not by a resource's repr or str (a field that carries a secret setting
is declared `repr=False` by `from_setting`), not by the loaded settings, not by an error about a
setting's value."""

from __future__ import annotations

import dagster as dg
import pytest

from cdr_platform.defs import resources as resources_module
from cdr_platform.defs.resources import KafkaResource, SettingsResource, WarehouseResource, resources_for
from cdr_platform.lib import settings as settings_module
from cdr_platform.lib.settings import SETTINGS, Setting, SettingError, integer, load_settings, read_settings
from cdr_platform.utils.environment_helpers import Environment

SECRET_SETTINGS = [s.name for s in SETTINGS if s.secret]


def mark(name: str) -> str:
    """A value no repr would show by chance."""
    return f"s3cret-of-{name.lower()}-!"


RESOURCE_CLASSES = [
    cls
    for cls in vars(resources_module).values()
    if isinstance(cls, type) and issubclass(cls, SettingsResource) and cls is not SettingsResource
]


def test_every_field_that_carries_a_secret_is_left_out_of_the_repr():
    carried = {
        declared.name
        for cls in RESOURCE_CLASSES
        for field_name, declared in cls.carried_settings().items()
        if declared.secret and cls.model_fields[field_name].repr is False
    }
    secrets_carried = {
        declared.name for cls in RESOURCE_CLASSES for declared in cls.carried_settings().values() if declared.secret
    }
    assert carried == secrets_carried
    assert {"CDR_WAREHOUSE_PASSWORD", "CDR_KAFKA_SASL_PASSWORD", "CDR_POWERBI_CLIENT_SECRET"} <= carried


@pytest.mark.parametrize("resource_key", ["warehouse", "kafka", "powerbi"])
def test_a_resource_as_an_asset_gets_it_never_shows_its_secrets(resource_key, monkeypatch):
    """Built as the code location builds it (a secret as an EnvVar), then resolved as a run resolves
    it: the value is there for the connection, never in the repr or str."""
    for name in SECRET_SETTINGS:
        monkeypatch.setenv(name, mark(name))
    resource = resources_for(load_settings(), Environment.LOCAL)[resource_key]
    secrets = {field: d.name for field, d in type(resource).carried_settings().items() if d.secret}
    assert secrets, f"{resource_key} carries no secret"
    with dg.build_resources({resource_key: resource}) as built:
        resolved = getattr(built, resource_key)
        for field, name in secrets.items():
            assert getattr(resolved, field) == mark(name)  # resolved: what the connection uses
            assert mark(name) not in repr(resolved) and mark(name) not in str(resolved)
            assert field not in repr(resolved)


def test_the_warehouse_and_kafka_resources_built_by_hand_never_show_their_passwords():
    warehouse = WarehouseResource.for_settings(load_settings({}), password="hunter2-warehouse")
    assert warehouse.password == "hunter2-warehouse"
    kafka_secrets = {f: d.name for f, d in KafkaResource.carried_settings().items() if d.secret}
    assert {"CDR_KAFKA_SASL_PASSWORD", "CDR_KAFKA_SSL_KEY_PASSWORD"} <= set(kafka_secrets.values())
    kafka = KafkaResource.for_settings(load_settings({}), **{f: mark(n) for f, n in kafka_secrets.items()})
    for shown in (repr(warehouse), str(warehouse), repr(kafka), str(kafka)):
        assert "hunter2-warehouse" not in shown
        assert not any(mark(name) in shown for name in kafka_secrets.values())
    assert "hunter2-warehouse" not in repr(warehouse.settings) + repr(kafka.settings)


def test_the_loaded_settings_never_show_a_secret():
    loaded = load_settings({name: mark(name) for name in SECRET_SETTINGS})
    for name in SECRET_SETTINGS:
        assert mark(name) not in repr(loaded) and mark(name) not in str(loaded)
    assert loaded.warehouse.password == mark("CDR_WAREHOUSE_PASSWORD")


def test_an_invalid_secret_is_named_but_its_value_hidden(monkeypatch):
    """Every secret setting is free text today (it never fails to parse), so a secret with a type
    that can fail stands in for one that someday could."""
    strict_secret = Setting("CDR_TEST_PIN", integer(), 0, "a secret number", into=("run_id",), secret=True)
    monkeypatch.setattr(settings_module, "SETTINGS", (*SETTINGS, strict_secret))
    with pytest.raises(SettingError) as raised:
        read_settings({"CDR_TEST_PIN": "12ab-s3cret"})
    assert "CDR_TEST_PIN" in str(raised.value) and "(hidden)" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    # a setting that is not a secret shows what it got, to help
    with pytest.raises(SettingError, match="'many'"):
        read_settings({"CDR_TOPIC_PARTITIONS": "many"})
