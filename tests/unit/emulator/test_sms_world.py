"""The SMS world document: validation that names the bad field, round trips, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wafile.emulator.sms import (
    MAGIC_PHONES,
    Account,
    Phone,
    Timing,
    World,
    WorldError,
    load_world,
    parse_world,
    sandbox_world,
    world_document,
)
from wafile.emulator.sms.magic import INVALID, OPTED_OUT, UNDELIVERED, behaviour_of

ACCOUNT = "AC" + "0123456789abcdef" * 2
SERVICE = "MG" + "fedcba9876543210" * 2


def document() -> dict[str, Any]:
    return {
        "accounts": [
            {
                "account_sid": ACCOUNT,
                "auth_token": "secret",
                "from_numbers": ["+15550002000"],
                "messaging_services": [SERVICE],
            }
        ],
        "phones": [
            {"number": "+4915100000001", "deliver_after": 0.5, "fail_with": None},
            {"number": "+4915100000002", "deliver_after": None, "fail_with": 30007},
        ],
        "timing": {"scale": 0.5, "step": 0.2},
        "control_token": "ctl",
    }


def test_parses_the_documented_shape() -> None:
    world = parse_world(document())
    assert world.accounts == (
        Account(
            account_sid=ACCOUNT,
            auth_token="secret",
            from_numbers=("+15550002000",),
            messaging_services=(SERVICE,),
        ),
    )
    assert world.phone("+4915100000002") == Phone(
        number="+4915100000002", deliver_after=None, fail_with=30007
    )
    assert world.timing == Timing(scale=0.5, step=0.2)
    assert world.control_token == "ctl"
    assert world.account(ACCOUNT) is world.accounts[0] and world.account("AC") is None


def test_defaults_and_an_empty_document() -> None:
    assert parse_world({}) == World()
    phone = parse_world({"phones": [{"number": "+4915100000001"}]}).phones[0]
    assert phone.deliver_after == 0.5 and phone.fail_with is None
    assert Timing().delay(0.5) == 0.5 and Timing(scale=0.01).delay(0.5) == pytest.approx(0.005)


def test_numbers_are_normalised_to_e164() -> None:
    doc = {"phones": [{"number": "+49 151 000-000 01"}, {"number": 4915100000002}]}
    assert [p.number for p in parse_world(doc).phones] == ["+4915100000001", "+4915100000002"]


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda d: d.update(extra=1), "world.extra: unknown field"),
        (lambda d: d.update(accounts={}), "accounts: must be a list"),
        (lambda d: d["accounts"][0].pop("auth_token"), "accounts[0].auth_token: required"),
        (lambda d: d["accounts"][0].update(auth_token=" "), "accounts[0].auth_token"),
        (lambda d: d["accounts"][0].update(account_sid="AC123"), "accounts[0].account_sid"),
        (lambda d: d["accounts"][0].update(account_sid="SK" + "0" * 32), "account_sid"),
        (
            lambda d: d["accounts"][0].update(from_numbers=["+1555", "x"]),
            "accounts[0].from_numbers[0]",
        ),
        (
            lambda d: d["accounts"][0].update(messaging_services=["MG1"]),
            "accounts[0].messaging_services[0]",
        ),
        (
            lambda d: d["accounts"][0].update(from_numbers=[]),
            "accounts[0].from_numbers: a Messaging Service needs",
        ),
        (
            lambda d: d["accounts"][0].update(from_numbers=["+15550002000", "+1 555 000 2000"]),
            "accounts[0].from_numbers[1]: '+15550002000' is declared twice",
        ),
        (lambda d: d["accounts"].append(dict(d["accounts"][0])), "accounts[1].account_sid"),
        (
            lambda d: d["accounts"].append(
                {
                    "account_sid": "AC" + "1" * 32,
                    "auth_token": "t",
                    "from_numbers": ["+15550002000"],
                }
            ),
            "accounts[1].from_numbers: '+15550002000' is declared by another account",
        ),
        (lambda d: d["phones"][0].update(number="015100000001"), "phones[0].number"),
        (lambda d: d["phones"][1].update(deliver_after=-1), "phones[1].deliver_after"),
        (lambda d: d["phones"][1].update(deliver_after="soon"), "phones[1].deliver_after"),
        (lambda d: d["phones"][1].update(fail_with=12345), "phones[1].fail_with"),
        (lambda d: d["phones"][1].update(fail_with=True), "phones[1].fail_with"),
        (lambda d: d["phones"][1].update(colour="red"), "phones[1].colour: unknown field"),
        (lambda d: d["phones"].append({"number": "+4915100000001"}), "phones[2].number"),
        (lambda d: d["timing"].update(scale=float("nan")), "timing.scale"),
        (lambda d: d.update(control_token=""), "world.control_token"),
    ],
)
def test_errors_name_the_bad_field(change: Any, names: str) -> None:
    doc = document()
    change(doc)
    with pytest.raises(WorldError) as caught:
        parse_world(doc)
    assert names in str(caught.value)


def test_document_round_trips() -> None:
    world = parse_world(document())
    assert parse_world(world_document(world)) == world
    public = world_document(world, with_secrets=False)
    assert "auth_token" not in public["accounts"][0] and "control_token" not in public


def test_load_world_reads_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "world.yaml"
    yaml_file.write_text(
        f"""
accounts:
  - account_sid: {ACCOUNT}
    auth_token: "tok"
    from_numbers: ["+15550002000"]
    messaging_services: ["{SERVICE}"]
phones:
  - {{number: "+4915100000001", deliver_after: 0.5, fail_with: null}}
""",
        encoding="utf-8",
    )
    json_file = tmp_path / "world.json"
    json_file.write_text(json.dumps(world_document(load_world(yaml_file))), encoding="utf-8")
    assert load_world(json_file) == load_world(yaml_file)
    assert load_world(yaml_file).accounts[0].auth_token == "tok"


def test_load_world_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("phones: [{number: nope}]\n", encoding="utf-8")
    with pytest.raises(WorldError, match=r"bad\.yaml: phones\[0\]\.number"):
        load_world(bad)
    with pytest.raises(WorldError, match="missing"):
        load_world(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(WorldError, match="not valid JSON"):
        load_world(broken)


def test_sandbox_world() -> None:
    world = sandbox_world(ACCOUNT, "tok", "+15550001000")
    assert world.accounts == (
        Account(account_sid=ACCOUNT, auth_token="tok", from_numbers=("+15550001000",)),
    )
    assert world.phones == () and world.control_token is None
    fast = sandbox_world(
        ACCOUNT, "tok", "+15550001000", messaging_services=[SERVICE], timing=Timing(scale=0)
    )
    assert fast.accounts[0].messaging_services == (SERVICE,) and fast.timing.scale == 0
    with pytest.raises(WorldError, match=r"sandbox\.account_sid"):
        sandbox_world("AC1", "tok", "+15550001000")


def test_magic_numbers_and_declared_phones() -> None:
    assert MAGIC_PHONES[UNDELIVERED].fail_with == 30003
    assert MAGIC_PHONES[INVALID].fail_with == 21211
    assert MAGIC_PHONES[OPTED_OUT].fail_with == 21610
    assert behaviour_of(UNDELIVERED, None) == (MAGIC_PHONES[UNDELIVERED], "magic")
    declared = Phone(number=UNDELIVERED)
    assert behaviour_of(UNDELIVERED, declared) == (declared, "declared")
    ordinary, source = behaviour_of("+4915100000077", None)
    assert source == "default" and ordinary.deliver_after == 0.5 and ordinary.fail_with is None
