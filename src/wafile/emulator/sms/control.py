"""The control API under `/_control`: read and change the world at run time, read the
messages, each phone's inbox and the callback log, reset. JSON in and out; errors are
`{"error": {"status", "message"}}` with a 4xx status. When the world has a
`control_token`, every route needs `Authorization: Bearer <control_token>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wafile.emulator.control_api import control_error, guard, json_body
from wafile.emulator.sms.state import NotFound, SmsEmulator
from wafile.emulator.sms.world import WorldError, account_document, phone_document

__all__ = ["control_error", "control_routes"]


async def _json_body(request: Request) -> Any:
    return await json_body(request, WorldError)


def control_routes(
    emulator: SmsEmulator,
    root: Callable[[Request], str],
    base_url: Callable[[Request], str],
) -> list[Route]:
    """The control routes, relative to the `/_control` mount. `root` is the app's path
    prefix and `base_url` its absolute URL, both taken from the request."""

    guarded = guard(lambda: emulator.world.control_token, bad_input=WorldError, not_found=NotFound)

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
