from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from wafile.config import LogFormat
from wafile.logs import request_id_var, setup_logging

KEY = "wfk_0123456789ab_" + "f" * 48


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    fmt = request.param
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging("INFO", fmt)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize("captured", [LogFormat.JSON], indirect=True)
def test_json_lines_carry_request_id_and_extras(captured: io.StringIO) -> None:
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("wafile.test").info("hello %s", "world", extra={"n": 3})
    finally:
        request_id_var.reset(token)
    doc = json.loads(captured.getvalue())
    assert doc["message"] == "hello world"
    assert doc["request_id"] == "req-1"
    assert doc["level"] == "info" and doc["logger"] == "wafile.test" and doc["n"] == 3


@pytest.mark.parametrize("captured", [LogFormat.TEXT, LogFormat.JSON], indirect=True)
def test_secrets_never_reach_the_output(captured: io.StringIO) -> None:
    log = logging.getLogger("wafile.test")
    log.info("key in message %s", KEY)
    log.info("Authorization: Bearer %s", "some-opaque-token")
    log.warning("header", extra={"auth": f"X-API-Key {KEY}"})
    try:
        raise ValueError(f"failed for {KEY}")
    except ValueError:
        log.exception("boom")
    text = captured.getvalue()
    assert "f" * 48 not in text
    assert "some-opaque-token" not in text
    assert "wfk_0123456789ab_***" in text


@pytest.mark.parametrize("captured", [LogFormat.TEXT], indirect=True)
def test_text_lines_are_readable(captured: io.StringIO) -> None:
    logging.getLogger("wafile.test").info("plain")
    line = captured.getvalue().strip()
    assert line.endswith("INFO    wafile.test plain")
    assert "\n" not in line
