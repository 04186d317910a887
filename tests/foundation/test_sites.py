"""Fleet mode topics: a central broker sees each site's bus under `sites/<site_id>/`."""

from __future__ import annotations

import pytest
from wattbus import topics


@pytest.mark.parametrize(("topic", "site", "rest"), [
    ("sites/a/wattbus/v1/device/house-sim/meter-1/reading", "a", "wattbus/v1/device/house-sim/meter-1/reading"),
    ("sites/site-0042/wattbus/v1/service/sml-reader/main/status", "site-0042",
     "wattbus/v1/service/sml-reader/main/status"),
    ("sites/b/bridge/state", "b", "bridge/state"),  # the bridge's notification topic: not a contract topic
    ("wattbus/v1/device/house-sim/meter-1/reading", None, "wattbus/v1/device/house-sim/meter-1/reading"),
    ("sitesx/a/wattbus/v1/discovery/command", None, "sitesx/a/wattbus/v1/discovery/command"),
])
def test_strip_site(topic: str, site: str | None, rest: str) -> None:
    assert topics.strip_site(topic) == (site, rest)


@pytest.mark.parametrize("topic", ["sites/a", "sites/a/", "sites//wattbus/v1/discovery/command",
                                   "sites/+/wattbus/v1/discovery/command", "sites/a b/wattbus/v1/discovery/command"])
def test_strip_site_rejects_a_malformed_prefix(topic: str) -> None:
    with pytest.raises(topics.TopicError, match="site"):
        topics.strip_site(topic)


def test_stripped_topic_parses_as_on_the_site() -> None:
    built = topics.in_site("site-0042", topics.device_reading("sunspec-bridge", "fronius-34119102"))
    assert built == "sites/site-0042/wattbus/v1/device/sunspec-bridge/fronius-34119102/reading"
    site, rest = topics.strip_site(built)
    assert site == "site-0042"
    assert topics.parse(rest) == topics.ParsedTopic("device", "reading", "sunspec-bridge", "fronius-34119102")


def test_site_filters_match_bridged_topics() -> None:
    every_site = topics.in_site("+", topics.ALL_READINGS)
    assert every_site == "sites/+/wattbus/v1/device/+/+/reading"
    assert topics.matches(topics.shared("central", every_site), "sites/b/wattbus/v1/device/x/y/reading")
    assert not topics.matches(every_site, "wattbus/v1/device/x/y/reading")
    assert not topics.matches(topics.in_site("a", topics.ALL_READINGS), "sites/b/wattbus/v1/device/x/y/reading")
    with pytest.raises(topics.TopicError, match="site id"):
        topics.in_site("a/b", topics.ALL_READINGS)
