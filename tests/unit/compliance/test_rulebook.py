"""The rulebook: the shipped file loads, every number is reachable, bad values name their key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.compliance.errors import RulebookError, UnknownTemperatureClassError
from controller.compliance.rulebook import SHIPPED_RULEBOOK, load_rulebook, rulebook_from_dict
from tests.unit.compliance.support import modified_rules, rules, shipped_document


def test_shipped_rulebook_loads_with_the_gsp_numbers() -> None:
    book = load_rulebook()
    assert book.version == "gsp-2016.1"
    assert load_rulebook(SHIPPED_RULEBOOK) == book
    refrigerated = book.temperature_class("refrigerated")
    assert (refrigerated.label_zh, refrigerated.low_c, refrigerated.high_c) == ("冷藏", 2.0, 8.0)
    assert (refrigerated.alarm_delay_s, refrigerated.hysteresis_c) == (120.0, 0.3)
    frozen = book.temperature_class("frozen")
    assert (frozen.label_zh, frozen.low_c, frozen.high_c) == ("冷冻", -25.0, -10.0)
    assert frozen.hysteresis_c == 0.5, "a class's own hysteresis overrides the default"
    assert book.temperature_class("cold_place").high_c == 10.0
    cool = book.temperature_class("cool")
    assert (cool.label_zh, cool.low_c, cool.high_c) == ("阴凉", None, 20.0)
    assert book.temperature_class("room").low_c == 10.0
    assert book.recording.max_gap_s == 300 and book.recording.out_of_range_max_gap_s == 120
    assert book.mkt.delta_h_over_r_k == 10_000.0
    assert book.loading.precool_settle_s == 900
    assert book.link.loss_after_s == 600
    assert book.prediction.warn_before_exit_s == 1800
    health = book.probe_health
    assert (health.stuck_min_s, health.disagreement_min_s, health.jump_c) == (1800, 600, 10.0)
    assert (health.impossible_low_c, health.impossible_high_c) == (-60.0, 90.0)


def test_aliases_and_unknown_classes() -> None:
    assert rules().temperature_class("cold").name == "cold_place"
    with pytest.raises(UnknownTemperatureClassError) as caught:
        rules().temperature_class("tepid")
    assert caught.value.name == "tepid" and "refrigerated" in caught.value.known
    assert isinstance(caught.value, KeyError)


def test_product_label_claims_are_extra_classes() -> None:
    def add_claim(doc: dict[str, Any]) -> None:
        doc["classes"]["insulin_2_6"] = {
            "label_zh": "胰岛素",
            "low_c": 2.0,
            "high_c": 6.0,
            "alarm_delay_s": 60,
        }

    claim = modified_rules(add_claim).temperature_class("insulin_2_6")
    assert (claim.low_c, claim.high_c, claim.alarm_delay_s, claim.hysteresis_c) == (
        2.0,
        6.0,
        60.0,
        0.3,
    )


@pytest.mark.parametrize(
    ("volume_m3", "probes"), [(0.5, 2), (12.0, 2), (20.0, 2), (20.01, 3), (40.0, 3), (41.0, 4)]
)
def test_required_probes_add_one_per_extra_20_m3_or_part(volume_m3: float, probes: int) -> None:
    assert rules().required_probes(volume_m3) == probes


@pytest.mark.parametrize(
    ("value_c", "accuracy_c"),
    [(5.0, 0.5), (40.0, 0.5), (0.0, 0.5), (-0.1, 1.0), (-25.0, 1.0), (-40.0, 1.0), (55.0, 0.5)],
)
def test_accuracy_required_at_a_value(value_c: float, accuracy_c: float) -> None:
    assert rules().accuracy_required_c(value_c) == accuracy_c


def test_contacts_and_escalation() -> None:
    book = rules()
    first = book.contacts_for(site="TRUCK-01", alarm="power_loss", level=1)
    assert len(first) >= 3 and all(c.channels.sms for c in first)
    assert {c.role for c in book.contacts_for(site="TRUCK-01", alarm="excursion", level=2)} == {
        "quality_manager"
    }
    assert [book.alarms.level_at(t) for t in (0, 899, 900, 2699, 2700, 10**6)] == [1, 1, 2, 2, 3, 3]


def _expect_error(change: Any, key: str) -> RulebookError:
    document = shipped_document()
    change(document)
    with pytest.raises(RulebookError) as caught:
        rulebook_from_dict(document)
    assert caught.value.key == key, caught.value
    return caught.value


def test_low_limit_not_below_high_names_the_key() -> None:
    error = _expect_error(
        lambda d: d["classes"]["frozen"].update(low_c=-5.0), "classes.frozen.low_c"
    )
    assert "below high_c" in error.message


def test_fewer_than_three_contacts_is_an_error() -> None:
    def drop(doc: dict[str, Any]) -> None:
        doc["contacts"]["default"] = doc["contacts"]["default"][1:]

    error = _expect_error(drop, "contacts.default")
    assert "at least 3" in error.message


def test_a_site_list_is_checked_too() -> None:
    def site(doc: dict[str, Any]) -> None:
        doc["contacts"]["TRUCK-07"] = doc["contacts"]["default"][:2]

    _expect_error(site, "contacts.TRUCK-07")


def test_contacts_not_receiving_an_alarm_kind_do_not_count() -> None:
    def narrow(doc: dict[str, Any]) -> None:
        doc["contacts"]["default"][0]["alarms"] = ["excursion"]

    error = _expect_error(narrow, "contacts.default")
    assert "link_loss" in error.message or "power_loss" in error.message


@pytest.mark.parametrize(
    ("path", "value", "key"),
    [
        (("recording", "max_gap_s"), -1, "recording.max_gap_s"),
        (("loading", "precool_settle_s"), -900, "loading.precool_settle_s"),
        (("classes", "room", "alarm_delay_s"), -5, "classes.room.alarm_delay_s"),
        (("classes", "room", "low_c"), True, "classes.room.low_c"),
        (("classes", "room", "high_c"), "30", "classes.room.high_c"),
        (("classes", "room", "colour"), "red", "classes.room.colour"),
        (("recording", "every_s"), 60, "recording.every_s"),
        (("surprise",), 1, "surprise"),
        (("contacts", "default", 0, "channels", "sms"), "12345", "contacts.default.0.channels.sms"),
        (("prediction", "min_fit_quality"), 1.5, "prediction.min_fit_quality"),
    ],
)
def test_invalid_values_name_their_key(path: tuple[Any, ...], value: Any, key: str) -> None:
    def put(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    _expect_error(put, key)


def test_missing_section_and_semantic_checks() -> None:
    _expect_error(lambda d: d.pop("recording"), "recording")
    _expect_error(
        lambda d: d["classes"]["room"].update(hysteresis_c=11.0), "classes.room.hysteresis_c"
    )
    _expect_error(lambda d: d["classes"]["room"].update(low_c=None, high_c=None), "classes.room")
    _expect_error(lambda d: d["classes"]["room"].update(aliases=["frozen"]), "classes.room.aliases")
    _expect_error(
        lambda d: d["probe_health"].update(impossible_low_c=100.0), "probe_health.impossible_low_c"
    )
    _expect_error(
        lambda d: d["alarms"]["levels"][0].pop("escalate_after_s"),
        "alarms.levels.0.escalate_after_s",
    )


def test_bad_yaml_and_unreadable_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: [unclosed\n", encoding="utf-8")
    with pytest.raises(RulebookError) as caught:
        load_rulebook(broken)
    assert caught.value.key == "" and "bad YAML" in caught.value.message
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(RulebookError, match="mapping"):
        load_rulebook(listed)
    with pytest.raises(RulebookError, match="cannot read"):
        load_rulebook(tmp_path / "missing.yaml")
