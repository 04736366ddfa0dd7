"""A callback receiver that answers 500 for a while, then recovers (issue 7, Done-when 6):
every event of the message is delivered once it is up, each exactly once, in sequence
order. Nothing is lost.

Real processes: `wafile serve` (sandbox: API, worker and WhatsApp emulator) and the
receiver, `wafile webhooks listen --fail-first N`, which answers 500 to the first N
signed requests. WAFILE_CALLBACK_RETRY_SCHEDULE makes the retries come a second apart
(instead of 5 s, 5 min, 30 min...), so the outage and the recovery take seconds.

tests/integration/test_callbacks.py covers the neighbours in-process: a receiver that
refuses connections and then listens (one event), redirects, a used-up schedule and
manual redelivery. Here the outage spans every event of a message, which happen while
the receiver fails, so the order waits, the retries of several deliveries and their
recovery run together.

Order: a later event of the message waits while an earlier one to the same endpoint is
pending (docs/api.md, "Callbacks"), so the receiver gets them in sequence as they are
accepted, and only the first pending event is tried while the receiver fails.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.e2e.processes import Process
from tests.e2e.test_cli_webhooks_listen import (
    READ_EVENTS,
    WAIT,
    Served,
    add_endpoint,
    listen,
    send_message,
    wait_for,
)

FAILURES = 10  # the receiver's 500s: the outage outlasts the message (about 3 s)
# Attempts a delivery may make: more than FAILURES, so none can use them up in the
# outage, 1 s apart (less 0-20 % jitter).
SCHEDULE = [0] + [1] * (FAILURES + 1)


def test_every_event_is_delivered_once_the_receiver_recovers(
    tmp_path: Path, processes: list[Process]
) -> None:
    served = Served(tmp_path, processes, WAFILE_CALLBACK_RETRY_SCHEDULE=json.dumps(SCHEDULE))
    with served.client() as http:
        endpoint = add_endpoint(http)
        receiver = listen(
            tmp_path, processes, "receiver", endpoint, "--json", f"--fail-first={FAILURES}"
        )
        message_id = send_message(http)

        arrived = [json.loads(line) for line in wait_for(receiver, len(READ_EVENTS), served.proc)]

        def deliveries() -> list[dict[str, Any]]:
            page = http.get(f"/v1/webhooks/{endpoint['id']}/deliveries", params={"limit": 50})
            assert page.status_code == 200, page.text
            return list(page.json()["data"])

        deadline = time.monotonic() + WAIT
        log = deliveries()
        while any(d["status"] != "delivered" for d in log):
            assert time.monotonic() < deadline, f"deliveries not all recorded delivered: {log}"
            time.sleep(0.2)
            log = deliveries()
        health = http.get(f"/v1/webhooks/{endpoint['id']}").json()

    # The outage happened: exactly FAILURES requests were answered 500...
    failed_on_purpose = [line for line in receiver.log().splitlines() if "500 on purpose" in line]
    assert len(failed_on_purpose) == FAILURES, receiver.log()
    # ...and afterwards every event arrived, each once, in sequence order.
    assert [e["sequence"] for e in arrived] == list(range(1, len(READ_EVENTS) + 1))
    assert [e["type"] for e in arrived] == READ_EVENTS
    assert len({e["id"] for e in arrived}) == len(READ_EVENTS)
    assert {e["message"]["id"] for e in arrived} == {message_id}
    assert arrived[-1]["message"]["status"] == "read"

    # The delivery log tells the same story: the 500s, then one 200 per delivery.
    assert sorted(d["sequence"] for d in log) == list(range(1, len(READ_EVENTS) + 1))
    attempts = [a for d in log for a in d["attempts"]]
    assert sum(a["status_code"] == 500 for a in attempts) == FAILURES
    assert len(attempts) == FAILURES + len(READ_EVENTS)
    # In line: while the receiver failed, only the first event was tried.
    tries = {d["sequence"]: len(d["attempts"]) for d in log}
    assert tries == {1: FAILURES + 1} | {n: 1 for n in range(2, len(READ_EVENTS) + 1)}
    for delivery in log:
        *before, last = delivery["attempts"]
        assert all(a["status_code"] == 500 and a["error"] == "HTTP 500" for a in before)
        assert last["status_code"] == 200 and last["error"] is None
        assert [a["number"] for a in delivery["attempts"]] == list(
            range(1, len(delivery["attempts"]) + 1)
        )
        assert delivery["delivered_at"] is not None
    assert health["failing"] is False and health["last_status_code"] == 200
