"""The emulator against Meta's own OpenAPI spec of the Business Messaging API (v23.0).

Responses of the media and messages operations, error envelopes and webhook bodies are
validated with jsonschema against the spec's schemas ($refs resolved), and the spec's
request examples are sent to the emulator, which must accept every one of a type it
emulates. The spec is the file named by WAFILE_META_OPENAPI, else the reference copy at
`../shared/reference/meta-openapi/` beside the repository, else the copy kept in
`tests/contract/meta-openapi/` (so a clean clone anywhere runs these tests). Missing
altogether, the tests skip, unless CI is true (then they fail).

Two repairs to the spec, both about its shape, not its content: `allOf` members are
merged into one schema before validation (the spec puts `additionalProperties: false`
on a member that lists only its own properties, which taken literally refuses every
message), and a recursive `$ref` below its first use accepts anything.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.integration.emulator.test_whatsapp_harness import (
    OPEN_PHONE,
    PNID,
    TOKEN,
    Harness,
    Servers,
    auth,
    emulator_running,
    eventually,
    mp4,
    ogg_opus,
    pdf,
    png,
    running_servers,
    webp,
)

SPEC_NAME = "business-messaging-api_v23.0.yaml"
REPO_ROOT = Path(__file__).resolve().parents[3]
REFERENCE_SPEC = REPO_ROOT.parent / "shared" / "reference" / "meta-openapi" / SPEC_NAME
KEPT_SPEC = REPO_ROOT / "tests" / "contract" / "meta-openapi" / SPEC_NAME
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}
DOC_KEYS = {"description", "example", "examples", "discriminator", "summary", "externalDocs"}
MEDIA = {
    "audio": (ogg_opus(), "audio/ogg"),
    "document": (pdf(), "application/pdf"),
    "image": (png(), "image/png"),
    "sticker": (webp(), "image/webp"),
    "video": (mp4(), "video/mp4"),
}


def spec_path() -> Path:
    override = os.environ.get("WAFILE_META_OPENAPI")
    if override:
        return Path(override)
    return REFERENCE_SPEC if REFERENCE_SPEC.is_file() else KEPT_SPEC


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = spec_path()
    if not path.is_file():
        reason = (
            f"Meta's OpenAPI spec not found at {path} (set WAFILE_META_OPENAPI to its "
            f"path, or restore tests/contract/meta-openapi/{SPEC_NAME})"
        )
        if IN_CI:
            pytest.fail(f"CI is set and {reason}", pytrace=False)
        pytest.skip(reason)
    with path.open("rb") as f:
        data: dict[str, Any] = yaml.load(f, Loader=yaml.CSafeLoader)
    return data


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    with running_servers() as s:
        yield s


@pytest.fixture
async def wa(servers: Servers) -> AsyncIterator[Harness]:
    async with emulator_running(servers) as h:
        yield h


# -- schema resolution ------------------------------------------------------------------


def _lookup(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(spec: dict[str, Any], node: Any, stack: tuple[str, ...] = ()) -> Any:
    """`node` with every $ref inlined, allOf merged and OpenAPI-only keys dropped."""
    if isinstance(node, list):
        return [resolve(spec, item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in stack:
            return {}
        return resolve(spec, _lookup(spec, ref), (*stack, ref))
    out = {k: resolve(spec, v, stack) for k, v in node.items() if k not in DOC_KEYS}
    if k_props := out.get("properties"):
        out["properties"] = dict(k_props)
    parts = out.pop("allOf", None)
    return _merge([*parts, out]) if parts else out


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                props = merged.setdefault("properties", {})
                for name, schema in value.items():
                    props[name] = {"allOf": [props[name], schema]} if name in props else schema
            elif key == "required":
                merged["required"] = sorted({*merged.get("required", []), *value})
            elif key == "additionalProperties" and value is False:
                merged["additionalProperties"] = False
            elif key not in merged:
                merged[key] = value
            elif merged[key] != value:
                extra.append({key: value})
    if extra:
        merged["allOf"] = extra
    return merged


def schema_errors(spec: dict[str, Any], schema: Any, instance: Any) -> list[str]:
    validator = Draft202012Validator(resolve(spec, schema))
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def response_schema(spec: dict[str, Any], path: str, method: str) -> Any:
    op = spec["paths"][path][method]
    return op["responses"]["200"]["content"]["application/json"]["schema"]


def request_examples(spec: dict[str, Any]) -> dict[str, Any]:
    op = spec["paths"]["/{Version}/{Phone-Number-ID}/messages"]["post"]
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    return {name: ex["value"] for name, ex in examples.items()}


# -- tests -------------------------------------------------------------------------------


def test_spec_location_is_relative_to_the_repository() -> None:
    assert spec_path() in (REFERENCE_SPEC, KEPT_SPEC) or "WAFILE_META_OPENAPI" in os.environ
    assert REFERENCE_SPEC.is_relative_to(REPO_ROOT.parent)
    assert KEPT_SPEC.is_file()  # the copy every clone runs against


def test_resolver_merges_allof(spec: dict[str, Any]) -> None:
    """The merge is what makes the spec usable: a document message validates against the
    merged DocumentMessage, and a caption-less audio with an extra key does not."""
    good = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "document",
        "document": {"id": "123", "caption": "c", "filename": "a.pdf"},
    }
    assert schema_errors(spec, component("Message"), good) == []
    bad = {**good, "bogus": 1}
    assert schema_errors(spec, component("Message"), bad)


async def test_media_operations_match_the_spec(spec: dict[str, Any], wa: Harness) -> None:
    data, mime = MEDIA["image"]
    up = await wa.upload(data, mime, "a.png")
    assert up.status_code == 200, up.text
    upload_schema = response_schema(spec, "/{Version}/{Phone-Number-ID}/media", "post")
    assert schema_errors(spec, upload_schema, up.json()) == []
    assert set(up.json()) == set(upload_schema["properties"])

    got = await wa.client.get(f"/v23.0/{up.json()['id']}", headers=auth(TOKEN))
    assert got.status_code == 200, got.text
    path = "/{Version}/{Media-ID}"
    assert schema_errors(spec, response_schema(spec, path, "get"), got.json()) == []
    example = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "examples"
    ]["Retrieve Media URL"]["value"]
    assert set(got.json()) == set(example)  # the same fields as Meta's example, no more
    assert isinstance(got.json()["file_size"], type(example["file_size"]))

    deleted = await wa.client.delete(f"/v23.0/{up.json()['id']}", headers=auth(TOKEN))
    assert deleted.status_code == 200
    assert schema_errors(spec, response_schema(spec, path, "delete"), deleted.json()) == []
    assert deleted.json() == {"success": True}


def _complete(example: Any, ids: dict[str, str], links: dict[str, str]) -> Any:
    """A spec example with its placeholders filled: a real recipient, real media ids and
    links, and `to`/`type`/template names where the spec's example leaves them out."""
    value = copy.deepcopy(example)
    value["to"] = "+" + OPEN_PHONE
    if "type" not in value:  # some examples leave it out; the content key says which
        kinds = ("template", "interactive", "location", "contacts", "reaction", *MEDIA)
        value["type"] = next((k for k in kinds if k in value), "text")
    value.setdefault("recipient_type", "individual")

    def fill(node: Any) -> None:
        if isinstance(node, dict):
            for kind in MEDIA:
                media = node.get(kind)
                if isinstance(media, dict):
                    if "id" in media:
                        media["id"] = ids[kind]
                    if "link" in media:
                        media["link"] = links[kind]
            for child in node.values():
                fill(child)
        elif isinstance(node, list):
            for child in node:
                fill(child)

    fill(value)
    if "context" in value:
        value["context"] = {"message_id": "wamid.spec-example"}
    return value


def _template_for(request: dict[str, Any], index: int) -> tuple[str, str, dict[str, Any]]:
    """The template an example sends, declared so the emulator knows it."""
    template = request["template"]
    name = template["name"]
    if not re.fullmatch(r"[a-z0-9_]+", name):
        name = template["name"] = f"spec_template_{index}"
    language = template["language"]["code"]
    if not re.fullmatch(r"[a-z]{2,3}(_[A-Za-z0-9]{2,8})?", language):
        language = template["language"]["code"] = "en_US"
    doc: dict[str, Any] = {"body_params": 0}
    for comp in template.get("components", []):
        params = comp.get("parameters", [])
        if comp["type"] == "header" and params:
            kind = params[0]["type"]
            doc["header"] = kind
            if kind == "text":
                doc["header_params"] = len(params)
        elif comp["type"] == "body":
            doc["body_params"] = len(params)
    return name, language, doc


async def test_spec_request_examples_are_accepted(spec: dict[str, Any], wa: Harness) -> None:
    ids = {}
    for kind, (data, mime) in MEDIA.items():
        ids[kind] = await wa.media_id(data, mime)
        wa.receiver.files[kind] = (data, mime, 200)
    links = {kind: wa.servers.file_url(kind) for kind in MEDIA}
    response = response_schema(spec, "/{Version}/{Phone-Number-ID}/messages", "post")
    await wa.control("PATCH", "/settings", json={"pair_rate_limit": False})

    checked: dict[str, int] = {"accepted": 0, "not emulated": 0}
    for index, (name, example) in enumerate(sorted(request_examples(spec).items())):
        if "status" in example:
            continue  # the read receipt: test_read_receipt_example
        request = _complete(example, ids, links)
        if request.get("type") == "template":
            tname, language, doc = _template_for(request, index)
            put = await wa.control("PUT", f"/templates/{tname}/{language}", json=doc)
            assert put.status_code in {200, 201}, (name, put.text)
        resp = await wa.client.post(f"/v21.0/{PNID}/messages", headers=auth(TOKEN), json=request)
        if request.get("type", "text") in {"location", "contacts", "interactive"}:
            assert resp.status_code == 400 and resp.json()["error"]["code"] == 131051, name
            checked["not emulated"] += 1
            continue
        assert resp.status_code == 200, (name, resp.text)
        assert schema_errors(spec, response, resp.json()) == [], name
        # The schema requires nothing, so check the fields are all there too.
        assert set(resp.json()) == set(resolve(spec, response)["properties"]), name
        checked["accepted"] += 1
    assert checked["accepted"] >= 25 and checked["not emulated"] >= 5, checked


async def test_our_requests_are_valid_messages_per_the_spec(
    spec: dict[str, Any], wa: Harness
) -> None:
    """What the tests send as media/text/reaction messages is a valid `Message`, so the
    emulator is exercised with requests Meta's schema allows."""
    messages = [
        {"type": "document", "document": {"id": "1", "caption": "c", "filename": "f.pdf"}},
        {"type": "image", "image": {"link": "https://example.com/a.png", "caption": "c"}},
        {"type": "video", "video": {"id": "1"}},
        {"type": "audio", "audio": {"id": "1"}},
        {"type": "sticker", "sticker": {"id": "1"}},
        {"type": "text", "text": {"body": "hi", "preview_url": False}},
        {"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
    ]
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": OPEN_PHONE}
    for message in messages:
        body = {**base, **message, "context": {"message_id": "wamid.y"}}
        assert schema_errors(spec, component("Message"), body) == [], message


async def test_read_receipt_example(spec: dict[str, Any], wa: Harness) -> None:
    sent = await wa.control(
        "POST", f"/phones/{OPEN_PHONE}/messages", json={"to": PNID, "text": "hi"}
    )
    inbound_id = sent.json()["message"]["id"]
    example = request_examples(spec)["Send typing indicator and read receipt"]
    request = {**example, "message_id": inbound_id}
    assert schema_errors(spec, component("MarkMessageRequestPayload"), request) == []
    resp = await wa.client.post(f"/v23.0/{PNID}/messages", headers=auth(TOKEN), json=request)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"success": True}
    assert schema_errors(spec, component("MarkMessageResponsePayload"), resp.json()) == []


async def test_error_envelopes_match_graph_api_error(spec: dict[str, Any], wa: Harness) -> None:
    cases = [
        await wa.client.get("/v23.0/999", headers=auth(TOKEN)),  # unknown object
        await wa.send({"to": OPEN_PHONE, "type": "text", "text": {"body": "x"}}, token="bad"),
        await wa.send({"to": OPEN_PHONE, "type": "image", "image": {"id": "404"}}),
        await wa.send(
            {
                "to": OPEN_PHONE,
                "type": "template",
                "template": {"name": "nope", "language": {"code": "en_US"}},
            }
        ),
        await wa.upload(b"PK\x03\x04zip", "application/zip", "a.zip"),
    ]
    codes = []
    for resp in cases:
        assert resp.status_code in {400, 401, 404}, resp.text
        assert schema_errors(spec, component("GraphAPIError"), resp.json()) == [], resp.text
        codes.append(resp.json()["error"]["code"])
    assert codes == [100, 190, 131009, 132001, 100]


async def test_webhook_bodies_match_the_spec(spec: dict[str, Any], wa: Harness) -> None:
    payload = component("WebhookPayload")
    wamid = await wa.sent_id({"to": OPEN_PHONE, "type": "text", "text": {"body": "hi"}})
    failed = await wa.sent_id({"to": "12015550103", "type": "text", "text": {"body": "hi"}})
    posts = await wa.wait_statuses(wamid, ["sent", "delivered", "read"])
    posts += await wa.wait_statuses(failed, ["failed"])
    for post in posts:
        assert schema_errors(spec, payload, post.json) == [], post.json

    image = base64.b64encode(png()).decode()
    await wa.control(
        "POST",
        f"/phones/{OPEN_PHONE}/messages",
        json={
            "to": PNID,
            "type": "image",
            "mime_type": "image/png",
            "caption": "look",
            "content_base64": image,
        },
    )
    await eventually(lambda: len(wa.receiver.inbound()) == 1)
    [inbound] = wa.receiver.inbound()
    # The spec's IncomingMessage points at the *outgoing* message schemas, so the message
    # itself is compared with the spec's "Image Message" example instead.
    loose = copy.deepcopy(spec)
    loose["components"]["schemas"]["IncomingMessage"] = {
        "type": "object",
        "required": ["from", "id", "timestamp", "type"],
    }
    assert schema_errors(loose, payload, inbound.json) == []
    examples = spec["paths"]["/whatsapp/webhooks"]["post"]["requestBody"]["content"][
        "application/json"
    ]["examples"]
    theirs = examples["Image Message"]["value"]["entry"][0]["changes"][0]["value"]
    ours = inbound.value
    assert set(ours) == set(theirs)
    assert set(ours["messages"][0]) == set(theirs["messages"][0])
    assert set(ours["messages"][0]["image"]) == set(theirs["messages"][0]["image"])
    assert set(ours["contacts"][0]) == set(theirs["contacts"][0])
    await asyncio.sleep(0)
