"""World documents: parsing, errors that name the field, round trips, world files,
the sandbox world."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wafile.emulator.whatsapp.world import (
    BusinessNumber,
    Phone,
    Settings,
    Template,
    Timing,
    World,
    WorldError,
    load_world,
    normalise_number,
    parse_world,
    sandbox_world,
    world_document,
)

BRIEF = """
numbers:   [{phone_number_id: "1001", display_phone_number: "15550001001", waba_id: "2001",
             access_token: "tok", app_secret: "sec", webhook_url: "http://127.0.0.1:9000/hook",
             verify_token: "vt", mps: 80}]
phones:    [{number: "4915100000001", on_whatsapp: true, deliver_after: 0.2, read_after: null,
             fail_with: null}]
templates: [{name: "invoice_ready", language: "en_US", header: "document", body_params: 1,
             status: "APPROVED"}]
"""


def number(**extra: Any) -> dict[str, Any]:
    return {
        "phone_number_id": "1001",
        "display_phone_number": "15550001001",
        "waba_id": "2001",
        "access_token": "tok",
        "app_secret": "sec",
        **extra,
    }


def test_the_briefs_world_file(tmp_path: Path) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(BRIEF)
    world = load_world(path)
    assert world.numbers == (
        BusinessNumber(
            phone_number_id="1001",
            display_phone_number="15550001001",
            waba_id="2001",
            access_token="tok",
            app_secret="sec",
            webhook_url="http://127.0.0.1:9000/hook",
            verify_token="vt",
            mps=80,
        ),
    )
    assert world.phones == (Phone(number="4915100000001", deliver_after=0.2, read_after=None),)
    assert world.templates == (
        Template(name="invoice_ready", language="en_US", header="document", body_params=1),
    )
    assert world.settings == Settings() and world.timing == Timing()
    assert world.control_token is None


def test_json_world_file_and_unquoted_ids(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    path.write_text(json.dumps({"numbers": [number(phone_number_id=1001, waba_id=2001)]}))
    world = load_world(path)
    assert world.numbers[0].phone_number_id == "1001" and world.numbers[0].waba_id == "2001"


def test_load_world_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(WorldError, match=r"missing\.yaml"):
        load_world(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("numbers: [{phone_number_id: x}]")
    with pytest.raises(WorldError, match=r"bad\.yaml: numbers\[0\]\.phone_number_id"):
        load_world(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_world(empty) == World()


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ([], "world: must be a mapping"),
        ({"numbers": {}}, "numbers: must be a list"),
        ({"nubmers": []}, "world.nubmers: unknown field"),
        ({"numbers": [number(mps=0)]}, "numbers[0].mps"),
        ({"numbers": [number(mps=True)]}, "numbers[0].mps"),
        ({"numbers": [number(access_token="")]}, "numbers[0].access_token"),
        ({"numbers": [number(webhook_url="localhost:9000")]}, "numbers[0].webhook_url"),
        ({"numbers": [number(display_phone_number="12")]}, "numbers[0].display_phone_number"),
        ({"numbers": [{"phone_number_id": "1"}]}, "numbers[0].display_phone_number: required"),
        ({"numbers": [number(), number()]}, "numbers[1].phone_number_id"),
        (
            {"numbers": [number(), number(phone_number_id="1002")]},
            "numbers[1].display_phone_number",
        ),
        ({"phones": [{"number": "abc"}]}, "phones[0].number"),
        ({"phones": [{"number": "4915100000001", "read_after": "2s"}]}, "phones[0].read_after"),
        ({"phones": [{"number": "4915100000001", "deliver_after": float("nan")}]}, "deliver_after"),
        ({"phones": [{"number": "4915100000001", "fail_with": 0}]}, "phones[0].fail_with"),
        ({"phones": [{"number": "+4915100000001"}, {"number": "4915100000001"}]}, "phones[1]"),
        ({"templates": [{"name": "x"}]}, "templates[0].language: required"),
        ({"templates": [{"name": "x", "language": "en_US", "header": "pdf"}]}, "header"),
        (
            {
                "templates": [
                    {"name": "x", "language": "en_US", "header": "image", "header_params": 1}
                ]
            },
            "templates[0].header_params",
        ),
        (
            {"templates": [{"name": "x", "language": "en_US", "body_params": 1, "components": []}]},
            "templates[0].body_params",
        ),
        (
            {"templates": [{"name": "x", "language": "en_US", "components": [{"type": "LOGO"}]}]},
            "templates[0].components[0].type",
        ),
        ({"settings": {"pair_burst": 0}}, "settings.pair_burst"),
        ({"settings": {"extra_document_types": ["Zip"]}}, "settings.extra_document_types[0]"),
        ({"timing": {"retry_delays": "fast"}}, "timing.retry_delays"),
        ({"timing": {"webhook_timeout": 0}}, "timing.webhook_timeout"),
        ({"control_token": ""}, "world.control_token"),
    ],
)
def test_errors_name_the_field(doc: Any, where: str) -> None:
    with pytest.raises(WorldError) as caught:
        parse_world(doc)
    assert where in str(caught.value)


def test_template_components_become_the_short_form() -> None:
    world = parse_world(
        {
            "templates": [
                {
                    "name": "hello",
                    "language": "de",
                    "category": "MARKETING",
                    "components": [
                        {"type": "HEADER", "format": "TEXT", "text": "Hi {{1}}"},
                        {"type": "BODY", "text": "{{1}} and {{2}} and {{ 1 }}"},
                        {"type": "BUTTONS", "buttons": []},
                    ],
                }
            ]
        }
    )
    assert world.templates[0] == Template(
        name="hello",
        language="de",
        header="text",
        header_params=1,
        body_params=2,
        category="MARKETING",
    )


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+4915100000001", "4915100000001"),
        ("+1 (201) 555-0101", "12015550101"),
        (12015550101, "12015550101"),
        ("12345", None),
        ("1234567890123456", None),
        ("+49 abc", None),
        (True, None),
        (None, None),
    ],
)
def test_normalise_number(raw: object, digits: str | None) -> None:
    assert normalise_number(raw) == digits


seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
ids = st.from_regex(r"[1-9][0-9]{0,15}", fullmatch=True)
phones = st.from_regex(r"[1-9][0-9]{5,14}", fullmatch=True)
texts = st.text(min_size=1).filter(str.strip)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    pnids = draw(st.lists(ids, unique=True, max_size=3))
    displays = draw(st.lists(phones, unique=True, min_size=len(pnids), max_size=len(pnids)))
    numbers = tuple(
        BusinessNumber(
            phone_number_id=p,
            display_phone_number=d,
            waba_id=draw(ids),
            access_token=draw(texts),
            app_secret=draw(texts),
            webhook_url=draw(st.none() | st.just("https://example.com/hook")),
            verify_token=draw(st.text()),
            mps=draw(st.integers(1, 1000)),
        )
        for p, d in zip(pnids, displays, strict=True)
    )
    phone_list = tuple(
        Phone(
            number=n,
            on_whatsapp=draw(st.booleans()),
            deliver_after=draw(st.none() | seconds),
            read_after=draw(st.none() | seconds),
            fail_with=draw(st.none() | st.integers(1, 200000)),
            fail_files_with=draw(st.none() | st.integers(1, 200000)),
            throttle_first=draw(st.integers(0, 5)),
            window_open=draw(st.booleans()),
            name=draw(texts),
        )
        for n in draw(st.lists(phones, unique=True, max_size=3))
    )
    names = draw(
        st.lists(st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True), unique=True, max_size=3)
    )
    templates = tuple(
        Template(
            name=name,
            language=draw(st.sampled_from(["en_US", "de", "pt_BR"])),
            header=(header := draw(st.sampled_from([None, "text", "document", "image", "video"]))),
            header_params=draw(st.integers(0, 3)) if header == "text" else 0,
            body_params=draw(st.integers(0, 5)),
            status=draw(st.sampled_from(["APPROVED", "PENDING", "PAUSED"])),
        )
        for name in names
    )
    return World(
        numbers=numbers,
        phones=phone_list,
        templates=templates,
        settings=Settings(
            pair_rate_limit=draw(st.booleans()),
            pair_interval=draw(st.floats(min_value=0.001, max_value=100)),
            pair_burst=draw(st.integers(1, 100)),
        ),
        timing=Timing(scale=draw(seconds), retry_delays=tuple(draw(st.lists(seconds, max_size=4)))),
        control_token=draw(st.none() | texts),
    )


@given(worlds())
def test_world_documents_round_trip(world: World) -> None:
    doc = world_document(world)
    assert parse_world(json.loads(json.dumps(doc))) == world


def test_sandbox_world() -> None:
    world = sandbox_world("1001", "tok", "sec", None, "vt")
    [number_] = world.numbers
    assert (number_.phone_number_id, number_.access_token, number_.app_secret) == (
        "1001",
        "tok",
        "sec",
    )
    assert number_.webhook_url is None and number_.verify_token == "vt"
    assert {(t.name, t.language, t.header, t.body_params, t.status) for t in world.templates} == {
        ("file_delivery", "en_US", "document", 1, "APPROVED"),
        ("image_delivery", "en_US", "image", 1, "APPROVED"),
        ("video_delivery", "en_US", "video", 1, "APPROVED"),
    }
    assert world.phones == ()
    fast = sandbox_world("1", "t", "s", "http://127.0.0.1:1/h", "v", timing=Timing(scale=0))
    assert fast.timing.scale == 0 and fast.numbers[0].webhook_url == "http://127.0.0.1:1/h"
    with pytest.raises(WorldError, match=r"sandbox\.webhook_url"):
        sandbox_world("1", "t", "s", "not a url", "v")
