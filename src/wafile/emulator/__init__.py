"""Test doubles of the services wafile talks to, faithful enough to build against.

`whatsapp`: Meta's WhatsApp Cloud API (Graph routes, media, messages, webhooks).
`sms`: a Twilio-shaped SMS provider (Messages API, status callbacks).

Each keeps its state in memory behind one class, runs as its own ASGI app (`wafile
emulator whatsapp|sms`) and is mounted inside `wafile serve` in sandbox mode. They
import nothing of wafile's service, API or database layers: a test double must not
share the code it is meant to check.
"""
