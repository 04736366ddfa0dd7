"""A small Python client for wafile's native API (the CLI's `wafile media ...` uses it).

    async with WafileClient("http://127.0.0.1:8000", api_key) as client:
        item = await client.upload(Path("invoice.pdf"))
        print(item["id"], item["url"])

Every failure the server reports arrives as `ApiError` with the problem document.
"""

from wafile.client.http import ApiError, WafileClient

__all__ = ["ApiError", "WafileClient"]
