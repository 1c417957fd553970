"""koasession.devices: the device facts a session records, under a policy that keeps no IP
address unless asked, and ``last_seen`` refreshed at most once per interval."""

from __future__ import annotations

import json
from typing import Any

import pytest

from koasession.devices import (
    DEVICE_KEY,
    DevicePolicy,
    device_facts,
    ip_prefix,
    read_device,
    record_device,
    touch_device,
)
from koasession.errors import ConfigurationError

UA = b"Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
HEADERS = [(b"host", b"example.com"), (b"User-Agent", UA)]


def test_default_records_user_agent_and_times_but_no_ip() -> None:
    facts = device_facts(HEADERS, "203.0.113.77", now=1700000000.9)
    assert facts == {
        "created_at": 1700000000,
        "last_seen": 1700000000,
        "user_agent": UA.decode(),
    }
    assert json.loads(json.dumps(facts)) == facts


def test_prefix_keeps_a_coarse_network_only() -> None:
    policy = DevicePolicy(ip="prefix")
    assert device_facts([], "203.0.113.77", policy, now=0)["ip"] == "203.0.113.0/24"
    assert device_facts([], "2001:db8:1:2::5", policy, now=0)["ip"] == "2001:db8:1::/48"
    assert device_facts([], "::ffff:198.51.100.9", policy, now=0)["ip"] == "198.51.100.0/24"
    assert "ip" not in device_facts([], "not-an-ip", policy, now=0)
    assert "ip" not in device_facts([], None, policy, now=0)


def test_full_ip_only_when_chosen() -> None:
    facts = device_facts([], "203.0.113.77", DevicePolicy(ip="full"), now=0)
    assert facts["ip"] == "203.0.113.77"


def test_user_agent_is_truncated_and_cleaned_or_left_out() -> None:
    long = [(b"user-agent", b"A" * 5000)]
    assert len(device_facts(long, None, now=0)["user_agent"]) == 256
    short = DevicePolicy(user_agent_max=10)
    assert device_facts(long, None, short, now=0)["user_agent"] == "A" * 10
    garbled = [(b"user-agent", b"Evil\x00\x1b[31mAgent\xff")]
    assert device_facts(garbled, None, now=0)["user_agent"] == "Evil[31mAgent\xff"
    assert "user_agent" not in device_facts(HEADERS, None, DevicePolicy(user_agent=False), now=0)
    assert "user_agent" not in device_facts([], None, now=0)


@pytest.mark.parametrize(
    "options",
    [{"ip": "all"}, {"user_agent_max": 0}, {"user_agent_max": 5000}, {"touch_interval": -1}],
)
def test_bad_policies_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        DevicePolicy(**options)


def test_user_agent_from_a_settings_file_is_refused_not_read_as_true() -> None:
    with pytest.raises(ConfigurationError, match="user_agent must be True or False; got 'false'"):
        DevicePolicy(user_agent="false")  # type: ignore[arg-type]


def test_record_then_touch_at_most_once_per_interval() -> None:
    session: dict[str, Any] = {"user": "ann"}
    record_device(session, device_facts(HEADERS, None, now=1000))
    assert session[DEVICE_KEY]["last_seen"] == 1000
    assert touch_device(session, now=1059) is False
    assert session[DEVICE_KEY]["last_seen"] == 1000
    assert touch_device(session, now=1060) is True
    assert session[DEVICE_KEY] == {
        "created_at": 1000,
        "last_seen": 1060,
        "user_agent": UA.decode(),
    }
    assert touch_device(session, DevicePolicy(touch_interval=0), now=1060) is True


def test_touch_leaves_a_session_without_facts_alone() -> None:
    session: dict[str, Any] = {"user": "ann"}
    assert touch_device(session, now=5000) is False
    assert session == {"user": "ann"}


def test_read_device_keeps_only_well_typed_fields() -> None:
    data = {DEVICE_KEY: {"user_agent": 5, "ip": "10.0.0.0/24", "created_at": True, "x": 1}}
    assert read_device(data) == {"ip": "10.0.0.0/24"}
    assert read_device({DEVICE_KEY: "junk"}) is None
    assert read_device({}) is None


def test_ip_prefix() -> None:
    assert ip_prefix(" 10.1.2.3 ") == "10.1.2.0/24"
    assert ip_prefix("fe80::1") == "fe80::/48"
    assert ip_prefix("") is None
