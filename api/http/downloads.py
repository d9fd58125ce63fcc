"""A file answered as a download: the one way the API's routes and the pages do it (the pages add
their security headers and `no-store`: `web.pages.download`)."""

from __future__ import annotations

from collections.abc import Mapping

from litestar import Response


def attachment(content: bytes | str, media_type: str, filename: str,
               headers: Mapping[str, str] | None = None) -> Response[bytes]:  # fmt: skip
    """`content` as the file `filename` (Content-Disposition: attachment), of `media_type`."""
    body = content.encode() if isinstance(content, str) else content
    return Response(body, media_type=media_type,
                    headers={**(headers or {}), "Content-Disposition": f'attachment; filename="{filename}"'})  # fmt: skip
