"""A small WADO-RS client (DICOM PS3.18): retrieve instances as multipart/related application/dicom."""

from __future__ import annotations

import re
from collections.abc import Sequence

import httpx

from carepulse.imaging.sources import InputLimits, InputTooLarge, WadoRequest

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


class DicomWebUnavailable(ConnectionError):
    """The DICOMweb server cannot be reached or failed (5xx, 429): retried, the record is kept."""


class DicomWebRejected(ValueError):
    """The server answered that the request can never succeed (4xx), or the URL is not allowed."""


class DicomWebTooLarge(DicomWebRejected, InputTooLarge):
    """The study is more than the worker may fetch for one record (``CAREPULSE_IMAGING_MAX_FETCH_BYTES``)."""


def parse_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a multipart/related body (RFC 2046), without their headers."""
    m = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not m:
        raise DicomWebRejected(f"multipart answer without a boundary ({content_type!r})")
    delimiter = b"--" + m.group(1).encode()
    parts: list[bytes] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]  # the CRLF belongs to the next delimiter
        parts.append(payload)
    return parts


class DicomWebClient:
    """Fetches the instances of a :class:`WadoRequest`; one HTTP connection pool per worker."""

    def __init__(self, *, timeout_s: float = 10.0, allowed_prefixes: Sequence[str] = (),
                 bearer_token: str | None = None, max_instances: int = 32,
                 max_bytes: int = InputLimits().max_fetch_bytes) -> None:
        headers = {"Accept": ACCEPT}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        self._http = httpx.AsyncClient(timeout=timeout_s, headers=headers, follow_redirects=False)
        self._allowed = tuple(p.rstrip("/") for p in allowed_prefixes if p)
        self._max = max_instances
        self._max_bytes = max_bytes

    async def close(self) -> None:
        await self._http.aclose()

    def _urls(self, req: WadoRequest) -> list[str]:
        study = f"{req.base_url}/studies/{req.study_uid}"
        if not req.series:
            return [study]
        urls: list[str] = []
        for s in req.series:
            if s.instances:
                urls += [f"{study}/series/{s.uid}/instances/{i}" for i in s.instances]
            else:
                urls.append(f"{study}/series/{s.uid}")
        return urls

    async def fetch(self, req: WadoRequest) -> list[bytes]:
        if not req.base_url.startswith(("http://", "https://")):
            raise DicomWebRejected(f"DICOMweb endpoint must be http(s): {req.base_url!r}")
        if self._allowed and not any(req.base_url == p or req.base_url.startswith(p + "/") for p in self._allowed):
            # Addresses come from the record: only servers configured as ours are called.
            raise DicomWebRejected(f"DICOMweb endpoint {req.base_url!r} is not in CAREPULSE_IMAGING_DICOMWEB_ALLOWED")
        out: list[bytes] = []
        fetched = 0
        for url in self._urls(req):
            parts, size = await self._get(url, self._max_bytes - fetched)
            out += parts
            fetched += size
            if len(out) >= self._max:
                return out[: self._max]
        return out

    def _too_large(self) -> DicomWebTooLarge:
        return DicomWebTooLarge(f"DICOMweb answers for this record exceed the {self._max_bytes} bytes allowed "
                                "(CAREPULSE_IMAGING_MAX_FETCH_BYTES)")

    async def _get(self, url: str, budget: int) -> tuple[list[bytes], int]:
        """The instances at ``url`` and the bytes read; the body is streamed and cut at ``budget``
        (held in memory whole otherwise: a study can be gigabytes)."""
        try:
            async with self._http.stream("GET", url) as resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    raise DicomWebUnavailable(f"DICOMweb server answered {resp.status_code}")
                if resp.status_code != 200:
                    raise DicomWebRejected(f"DICOMweb server answered {resp.status_code} for {url}")
                ctype = resp.headers.get("content-type", "")
                if not ctype.lower().startswith(("application/dicom", "multipart/related")):
                    raise DicomWebRejected(f"unexpected DICOMweb content type {ctype!r}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > budget:
                    raise self._too_large()
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > budget:
                        raise self._too_large()
        except httpx.TransportError as e:
            raise DicomWebUnavailable(f"DICOMweb GET failed: {type(e).__name__}") from None
        if ctype.lower().startswith("application/dicom"):
            return [bytes(body)], len(body)
        return parse_multipart(bytes(body), ctype), len(body)
