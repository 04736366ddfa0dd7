"""The control API under `/_control`: read and change the world at run time, read the
messages, each phone's inbox and the callback log, reset. JSON in and out; errors are
`{"error": {"status", "message"}}` with a 4xx status. When the world has a
`control_token`, every route needs `Authorization: Bearer <control_token>`."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wafile.emulator.sms.state import NotFound, SmsEmulator
from wafile.emulator.sms.world import WorldError, account_document, phone_document

__all__ = ["control_error", "control_routes"]

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]


def control_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WorldError(f"body: not valid JSON ({exc})") from None


def control_routes(
    emulator: SmsEmulator,
    root: Callable[[Request], str],
    base_url: Callable[[Request], str],
) -> list[Route]:
    """The control routes, relative to the `/_control` mount. `root` is the app's path
    prefix and `base_url` its absolute URL, both taken from the request."""

    def guarded(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            token = emulator.world.control_token
            if token is not None:
                scheme, _, given = request.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode("utf-8", "replace"), token.encode()
                ):
                    return control_error(401, "the control API needs Bearer <control_token>")
            try:
                return await handler(request)
            except WorldError as exc:
                return control_error(400, str(exc))
            except NotFound as exc:
                return control_error(404, str(exc.args[0]) if exc.args else "not found")
            except Exception:  # never a bare 500 page: say what broke
                log.exception("control request failed")
                return control_error(500, "the emulator failed on this request; see its log")

        return wrapped

    @guarded
    async def get_world(request: Request) -> Response:
        return JSONResponse(emulator.world_json())

    @guarded
    async def list_accounts(request: Request) -> Response:
        return JSONResponse({"accounts": emulator.accounts_json()})

    @guarded
    async def put_account(request: Request) -> Response:
        account, created = emulator.put_account(
            request.path_params["account_sid"], await _json_body(request)
        )
        return JSONResponse(
            {"account": account_document(account, with_token=False), "created": created},
            status_code=201 if created else 200,
        )

    @guarded
    async def delete_account(request: Request) -> Response:
        emulator.remove_account(request.path_params["account_sid"])
        return JSONResponse({"deleted": True})

    @guarded
    async def list_phones(request: Request) -> Response:
        world = emulator.world_json()
        return JSONResponse({"phones": world["phones"], "magic_phones": world["magic_phones"]})

    @guarded
    async def get_phone(request: Request) -> Response:
        return JSONResponse(emulator.phone_view(request.path_params["number"]))

    @guarded
    async def put_phone(request: Request) -> Response:
        phone, created = emulator.put_phone(
            request.path_params["number"], await _json_body(request)
        )
        return JSONResponse(
            {"phone": phone_document(phone), "created": created},
            status_code=201 if created else 200,
        )

    @guarded
    async def delete_phone(request: Request) -> Response:
        emulator.remove_phone(request.path_params["number"])
        return JSONResponse({"deleted": True})

    @guarded
    async def inbox(request: Request) -> Response:
        messages = emulator.inbox(request.path_params["number"])
        return JSONResponse({"messages": [m.inbox_entry() for m in messages]})

    @guarded
    async def list_messages(request: Request) -> Response:
        messages = emulator.messages(dict(request.query_params))
        prefix, base = root(request), base_url(request)
        return JSONResponse({"messages": [m.details(prefix, base) for m in messages]})

    @guarded
    async def get_message(request: Request) -> Response:
        msg = emulator.find_message(request.path_params["sid"])
        return JSONResponse(msg.details(root(request), base_url(request)))

    @guarded
    async def callbacks(request: Request) -> Response:
        entries = emulator.deliveries(dict(request.query_params))
        return JSONResponse({"callbacks": [e.to_json() for e in entries]})

    @guarded
    async def get_timing(request: Request) -> Response:
        return JSONResponse(emulator.timing_json())

    @guarded
    async def patch_timing(request: Request) -> Response:
        return JSONResponse(emulator.update_timing(await _json_body(request)))

    @guarded
    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/world", get_world, methods=["GET"]),
        Route("/accounts", list_accounts, methods=["GET"]),
        Route("/accounts/{account_sid}", put_account, methods=["PUT"]),
        Route("/accounts/{account_sid}", delete_account, methods=["DELETE"]),
        Route("/phones", list_phones, methods=["GET"]),
        Route("/phones/{number}", get_phone, methods=["GET"]),
        Route("/phones/{number}", put_phone, methods=["PUT"]),
        Route("/phones/{number}", delete_phone, methods=["DELETE"]),
        Route("/phones/{number}/inbox", inbox, methods=["GET"]),
        Route("/messages", list_messages, methods=["GET"]),
        Route("/messages/{sid}", get_message, methods=["GET"]),
        Route("/callbacks", callbacks, methods=["GET"]),
        Route("/timing", get_timing, methods=["GET"]),
        Route("/timing", patch_timing, methods=["PATCH"]),
        Route("/reset", reset, methods=["POST"]),
    ]
