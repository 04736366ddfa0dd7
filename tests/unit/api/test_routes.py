"""Every operation needs an API key unless it is listed here on purpose.

Read from the OpenAPI document: an operation that depends on the key lookup declares
its security schemes there, so a route that forgets auth shows up as public.
"""

from __future__ import annotations

from wafile.api.app import create_app
from wafile.config import Settings

PUBLIC = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/problems/{code}"),
    ("get", "/f/{media_id}"),  # signed download links: the signature is the credential
    # Meta's webhook: the verify token (GET) and X-Hub-Signature-256 (POST) are the credentials
    ("get", "/webhooks/whatsapp/{sender_id}"),
    ("post", "/webhooks/whatsapp/{sender_id}"),
    ("post", "/webhooks/sms/{sender_id}"),
}


def test_only_the_listed_operations_are_public() -> None:
    app = create_app(Settings(secret_key="k" * 40, database_url="sqlite:///:memory:"))
    spec = app.openapi()
    public = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            schemes = {name for req in op.get("security", []) for name in req}
            if not schemes:
                public.add((method, path))
            else:
                assert schemes == {"HTTPBearer", "APIKeyHeader"}, (method, path)
    assert public == PUBLIC
