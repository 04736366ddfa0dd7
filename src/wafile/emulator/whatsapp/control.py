"""The control API under `/_control`: read and change the world at run time, make phones
send messages, read inboxes and the webhook log, reset. JSON in and out; errors are
`{"error": {"status", "message"}}` with a 4xx status. When the world has a
`control_token`, every route needs `Authorization: Bearer <control_token>`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wafile.emulator.control_api import control_error, guard, json_body
from wafile.emulator.whatsapp.state import NotFound, WhatsAppEmulator
from wafile.emulator.whatsapp.world import (
    WorldError,
    number_document,
    phone_document,
    template_document,
)

__all__ = ["control_error", "control_routes"]


async def _json_body(request: Request) -> Any:
    return await json_body(request, WorldError)


def control_routes(emulator: WhatsAppEmulator, base_url: Callable[[Request], str]) -> list[Route]:
    """The control routes, relative to the `/_control` mount."""

    guarded = guard(lambda: emulator.world.control_token, bad_input=WorldError, not_found=NotFound)

    def file_url(request: Request, phone: str, message_id: str) -> str:
        return f"{base_url(request)}_control/phones/{phone}/inbox/{message_id}/file"

    @guarded
    async def get_world(request: Request) -> Response:
        return JSONResponse(emulator.world_json())

    @guarded
    async def list_numbers(request: Request) -> Response:
        return JSONResponse({"numbers": [number_document(n) for n in emulator.world.numbers]})

    @guarded
    async def put_number(request: Request) -> Response:
        number, created = emulator.put_number(
            request.path_params["phone_number_id"], await _json_body(request)
        )
        verification = await emulator.verify_webhook(number)
        return JSONResponse(
            {
                "number": number_document(number),
                "created": created,
                "webhook_verification": verification,
            },
            status_code=201 if created else 200,
        )

    @guarded
    async def verify_number(request: Request) -> Response:
        number = emulator.world.number(request.path_params["phone_number_id"])
        if number is None:
            raise NotFound(f"no business number {request.path_params['phone_number_id']!r}")
        if number.webhook_url is None:
            raise WorldError("webhook_url: this number has none to verify")
        return JSONResponse({"webhook_verification": await emulator.verify_webhook(number)})

    @guarded
    async def delete_number(request: Request) -> Response:
        emulator.remove_number(request.path_params["phone_number_id"])
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
        phone = request.path_params["number"]
        messages = emulator.inbox(phone)
        return JSONResponse(
            {
                "messages": [
                    m.to_json(file_url(request, m.to, m.id) if m.content is not None else None)
                    for m in messages
                ]
            }
        )

    @guarded
    async def inbox_file(request: Request) -> Response:
        msg = emulator.inbox_file(request.path_params["number"], request.path_params["message_id"])
        name = msg.filename or "file"
        return Response(
            msg.content,
            media_type=msg.mime_type,
            headers={"content-disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )

    @guarded
    async def sent(request: Request) -> Response:
        items = emulator.sent_by(request.path_params["number"])
        return JSONResponse({"messages": [m.to_json() for m in items]})

    @guarded
    async def phone_send(request: Request) -> Response:
        result = emulator.phone_send(request.path_params["number"], await _json_body(request))
        return JSONResponse(result, status_code=201)

    @guarded
    async def list_templates(request: Request) -> Response:
        return JSONResponse({"templates": [template_document(t) for t in emulator.world.templates]})

    @guarded
    async def put_template(request: Request) -> Response:
        template, created = emulator.put_template(
            request.path_params["name"], request.path_params["language"], await _json_body(request)
        )
        return JSONResponse(
            {"template": template_document(template), "created": created},
            status_code=201 if created else 200,
        )

    @guarded
    async def delete_template(request: Request) -> Response:
        emulator.remove_template(request.path_params["name"], request.path_params["language"])
        return JSONResponse({"deleted": True})

    @guarded
    async def get_settings(request: Request) -> Response:
        return JSONResponse(emulator.settings_json())

    @guarded
    async def patch_settings(request: Request) -> Response:
        return JSONResponse(emulator.update_settings(await _json_body(request)))

    @guarded
    async def webhooks(request: Request) -> Response:
        entries = emulator.deliveries(dict(request.query_params))
        return JSONResponse({"deliveries": [e.to_json() for e in entries]})

    @guarded
    async def media(request: Request) -> Response:
        return JSONResponse({"media": emulator.media_list()})

    @guarded
    async def reset(request: Request) -> Response:
        emulator.reset()
        return JSONResponse({"reset": True})

    return [
        Route("/world", get_world, methods=["GET"]),
        Route("/numbers", list_numbers, methods=["GET"]),
        Route("/numbers/{phone_number_id}", put_number, methods=["PUT"]),
        Route("/numbers/{phone_number_id}", delete_number, methods=["DELETE"]),
        Route("/numbers/{phone_number_id}/verify-webhook", verify_number, methods=["POST"]),
        Route("/phones", list_phones, methods=["GET"]),
        Route("/phones/{number}", get_phone, methods=["GET"]),
        Route("/phones/{number}", put_phone, methods=["PUT"]),
        Route("/phones/{number}", delete_phone, methods=["DELETE"]),
        Route("/phones/{number}/inbox", inbox, methods=["GET"]),
        Route("/phones/{number}/inbox/{message_id}/file", inbox_file, methods=["GET"]),
        Route("/phones/{number}/sent", sent, methods=["GET"]),
        Route("/phones/{number}/messages", phone_send, methods=["POST"]),
        Route("/templates", list_templates, methods=["GET"]),
        Route("/templates/{name}/{language}", put_template, methods=["PUT"]),
        Route("/templates/{name}/{language}", delete_template, methods=["DELETE"]),
        Route("/settings", get_settings, methods=["GET"]),
        Route("/settings", patch_settings, methods=["PATCH"]),
        Route("/webhooks", webhooks, methods=["GET"]),
        Route("/media", media, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
    ]
