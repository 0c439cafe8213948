"""Opt-in download of image URLs for providers that take images only as bytes (Gemini,
Bedrock). Off by default: fetching a URL a caller (or a model's user) supplied is a network
side effect the caller has to ask for (``download_images=True``)."""

from __future__ import annotations

import asyncio
import base64

from chatgate.errors import APIError, InvalidRequestError
from chatgate.providers.base import HttpRequest
from chatgate.transport import http
from chatgate.transport.http import Timeouts
from chatgate.types import ChatRequest, ImagePart, UserMessage

__all__ = ["MAX_IMAGE_BYTES", "inline_image_urls"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
_TIMEOUTS = Timeouts(connect=10.0, read=30.0, total=60.0)


def _remote_urls(request: ChatRequest) -> dict[str, str]:
    """URL -> where it first appears (for error messages)."""
    found: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if not isinstance(message, UserMessage) or isinstance(message.content, str):
            continue
        for j, part in enumerate(message.content):
            if isinstance(part, ImagePart) and part.image_url.url.startswith(
                ("http://", "https://")
            ):
                found.setdefault(part.image_url.url, f"messages[{i}].content[{j}].image_url")
    return found


async def _download(url: str, where: str, max_bytes: int) -> str:
    request = HttpRequest("GET", url, {"accept": "image/*"}, b"")
    try:
        resp = await http.open_response(request, _TIMEOUTS)
    except APIError as exc:
        raise InvalidRequestError(
            f"{where}: could not download the image: {exc}", param=where
        ) from None
    try:
        mime = resp.headers.get("content-type", "").partition(";")[0].strip().lower()
        if resp.status != 200:
            raise InvalidRequestError(
                f"{where}: downloading the image got status {resp.status}", param=where
            )
        if not mime.startswith("image/"):
            raise InvalidRequestError(
                f"{where}: the URL served {mime or 'no content type'!r}, not an image", param=where
            )
        body = bytearray()
        async for data in resp.iter_chunks():
            body += data
            if len(body) > max_bytes:
                raise InvalidRequestError(
                    f"{where}: the image is larger than {max_bytes // (1024 * 1024)} MiB; "
                    "resize it or pass a smaller one",
                    param=where,
                )
    except APIError as exc:
        raise InvalidRequestError(
            f"{where}: could not download the image: {exc}", param=where
        ) from None
    finally:
        resp.close()
    return f"data:{mime};base64,{base64.b64encode(bytes(body)).decode()}"


async def inline_image_urls(
    request: ChatRequest, *, max_bytes: int = MAX_IMAGE_BYTES
) -> ChatRequest:
    """The request with every http(s) image URL replaced by a data URL of its bytes.
    Each distinct URL is fetched once, all of them concurrently."""
    urls = _remote_urls(request)
    if not urls:
        return request
    data = await asyncio.gather(*(_download(u, w, max_bytes) for u, w in urls.items()))
    inline = dict(zip(urls, data, strict=True))
    messages = []
    for message in request.messages:
        if isinstance(message, UserMessage) and not isinstance(message.content, str):
            parts = [
                part.model_copy(
                    update={
                        "image_url": part.image_url.model_copy(
                            update={"url": inline[part.image_url.url]}
                        )
                    }
                )
                if isinstance(part, ImagePart) and part.image_url.url in inline
                else part
                for part in message.content
            ]
            message = message.model_copy(update={"content": parts})
        messages.append(message)
    return request.model_copy(update={"messages": messages})
