"""MjClient: the upstream's operations over httpx2, one `Endpoint` row at a time.

What it owns: the auth header style, the speed-mode URL prefix, sending each call the way its
row of `endpoints.ENDPOINTS` says, and the retry policy (`Endpoint.retry`):

- Reads (fetch, list, query, queue, seed) and result downloads are retried with jittered
  exponential backoff on transport failures, 5xx and 429; a 429's Retry-After is waited out
  when it is at most `MAX_RETRY_AFTER` seconds, and reported at once when it is longer.
- A submit is sent once. If the connection could not even be opened, nothing reached the
  upstream and it is tried again; once bytes may have left, a failure is reported as
  `SubmitOutcomeUnknownError` so that nobody pays twice for one picture.
- A cancel is sent once.

What a reply means (every dialect: NZ, PLUS, TA, new-api) is decided in `replies.py`, which
needs no connection. The transport is a seam: tests pass the simulator's ASGI transport and run
this very code. The key is only ever put in a request header; every message built from a reply
is scrubbed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import quote

import anyio
import httpx2

from mj_mcp import __version__, replies
from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import (
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.jsonbody import JsonBody
from mj_mcp.models import (
    AuthHeader,
    ConditionRequest,
    Mode,
    ModePrefix,
    Page,
    QueryRequest,
    SubmitResult,
    Task,
    UploadRequest,
    WireModel,
)
from mj_mcp.replies import Reply
from mj_mcp.retrying import Again, Sleep, equal_jitter, retrying
from mj_mcp.streams import read_capped

__all__ = ["AuthHeader", "MjClient"]

READ_ATTEMPTS: Final = 3
MAX_RETRY_AFTER: Final = 30.0
"""A longer Retry-After is reported to the caller instead of being slept through."""
DEFAULT_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024


class MjClient(AbstractAsyncContextManager["MjClient"]):
    """Async client for a midjourney-proxy compatible API.

    `submit` sends any paid job (the request model of its `Endpoint` row); the read methods
    (`fetch`, `list_by_condition`, `query`, `recent`, `queue`, `image_seed`), `cancel` and
    `download` each return a model or raise an error of `errors.py`. The connection stack (TLS
    context, proxy settings) is built at the first request, so that a server answers its first
    `tools/list` without paying for it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        auth_header: AuthHeader = "bearer",
        mode: Mode | Literal[""] = "",
        mode_prefix: ModePrefix = "/{mode}",
        timeout: float = 30.0,
        transport: httpx2.AsyncBaseTransport | None = None,
        sleep: Sleep = anyio.sleep,
        jitter: Callable[[], float] = random.random,
        read_attempts: int = READ_ATTEMPTS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.auth_header: AuthHeader = auth_header
        self.mode: Mode | Literal[""] = mode
        self.mode_prefix: ModePrefix = mode_prefix
        self._sleep = sleep
        self._jitter = jitter
        self._read_attempts = max(1, read_attempts)
        self._scrub = replies.scrubber(self._api_key)
        self._timeout = timeout
        self._transport = transport
        self._client: httpx2.AsyncClient | None = None

    @property
    def _http(self) -> httpx2.AsyncClient:
        # Built on first use: with the default transport this loads the TLS context (certifi)
        # and the connection stack, ~10 % of a cold start, before a first call that may never come.
        if self._client is None:
            # No default auth headers on the client: downloads of result images go to CDNs
            # that must never see the key. `_headers()` adds it to API calls only.
            self._client = httpx2.AsyncClient(
                transport=self._transport,
                timeout=httpx2.Timeout(self._timeout, connect=min(self._timeout, 10.0)),
                headers={"User-Agent": f"mj-mcp/{__version__}", "Accept": "application/json"},
                follow_redirects=False,
                trust_env=self._transport is None,
            )
        return self._client

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections (if any were opened); the client is not used afterwards."""
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- submits -----------------------------------------------------------------------------

    async def submit(self, endpoint: Endpoint, request: WireModel, *, mode: Mode | None = None) -> SubmitResult:
        """Send one paid job's request. Never re-sent once it may have arrived.

        `mode` overrides the client's speed mode for this call (for rows where it applies).
        """
        if not endpoint.paid:
            raise ValueError(f"{endpoint.name} is not a job endpoint")
        url = self._url(endpoint, request, mode=mode)
        reply = await self._send_submit(endpoint, url, request.to_wire())
        return replies.submit_result(endpoint, reply, self._scrub)

    async def upload_images(self, request: UploadRequest, *, mode: Mode | None = None) -> list[str]:
        """Upload images; returns their hosted URLs (no task is created)."""
        result = await self.submit(ENDPOINTS["upload_images"], request, mode=mode)
        if isinstance(result.result, list):
            return result.result
        return [result.result] if result.result else []

    # -- reads -------------------------------------------------------------------------------

    async def fetch(self, task_id: str) -> Task:
        """The task with that id; TaskNotFoundError when the upstream does not know it."""
        return replies.task_of(task_id, await self._read(ENDPOINTS["get_task"], task_id=task_id))

    async def list_by_condition(self, ids: list[str]) -> list[Task]:
        """The tasks among `ids` that exist (missing ids are left out, order not guaranteed)."""
        if not ids:
            return []
        reply = await self._read(ENDPOINTS["list_tasks"], body=ConditionRequest(ids=ids))
        return [] if reply.empty else replies.parse_list(reply)

    async def query(self, request: QueryRequest) -> Page:
        """One page of the upstream's task search (`/mj/task/query`)."""
        return replies.parse(await self._read(ENDPOINTS["query_tasks"], body=request), Page, "a page of tasks")

    async def recent(self) -> list[Task]:
        """The upstream's latest tasks, newest first as it sends them."""
        return replies.parse_list(await self._read(ENDPOINTS["recent_tasks"]))

    async def queue(self) -> list[Task]:
        """The tasks waiting in or running on the upstream's queue."""
        return replies.parse_list(await self._read(ENDPOINTS["task_queue"]))

    async def image_seed(self, task_id: str) -> str:
        """The Midjourney seed of a finished image task."""
        endpoint = ENDPOINTS["image_seed"]
        return replies.seed_of(endpoint, task_id, await self._read(endpoint, task_id=task_id), self._scrub)

    async def cancel(self, task_id: str) -> SubmitResult | None:
        """Ask the upstream to cancel; returns its envelope when it sends one (TA sends none)."""
        endpoint = ENDPOINTS["cancel_task"]
        return replies.cancel_result(endpoint, await self._read(endpoint, task_id=task_id), self._scrub)

    async def download(self, url: str, *, max_bytes: int = DEFAULT_DOWNLOAD_BYTES) -> tuple[bytes, str | None]:
        """Download a result file (image or video) the upstream pointed to: its bytes and media type.

        No key is sent. The upstream's own URLs are trusted (a self-hosted proxy on localhost must
        work), so no address guard here; URLs from tool arguments go through images.ImageLoader.
        """

        def too_large() -> Exception:
            return UpstreamRejectedError(
                f"The result file is larger than {max_bytes} bytes; not downloaded.",
                hint="Open the URL directly instead.",
            )

        async def attempt() -> tuple[bytes, str | None] | Again:
            try:
                async with self._http.stream("GET", url, follow_redirects=True) as response:
                    if response.status_code >= 400:
                        return _download_failure(response)
                    body = await read_capped(response.aiter_bytes(), max_bytes, too_large)
                    content_type = response.headers.get("content-type")
                    return body, content_type.split(";")[0].strip() if content_type else None
            except httpx2.TransportError as exc:
                return Again(UpstreamUnavailableError(f"Downloading the result file failed ({type(exc).__name__})."))
            except httpx2.InvalidURL:
                raise UpstreamRejectedError(
                    "The result file URL is not valid.", hint="Fetch the task again with get_task."
                ) from None

        return await retrying(attempt, attempts=self._read_attempts, backoff=self._backoff, sleep=self._sleep)

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            return {}
        if self.auth_header == "mj-api-secret":
            return {"mj-api-secret": self._api_key}
        if self.auth_header == "authorization":
            return {"Authorization": self._api_key}
        return {"Authorization": f"Bearer {self._api_key}"}

    def _url(self, endpoint: Endpoint, request: WireModel | None = None, *, mode: Mode | None = None) -> str:
        path = endpoint.path
        if endpoint.task_in_path:
            task_id = getattr(request, "task_id", None)
            if not isinstance(task_id, str) or not task_id:
                raise ValueError(f"{endpoint.name} needs a task id")
            # Quote everything: an id is data, never a path (no "../" tricks).
            path = path.replace("{id}", quote(task_id, safe=""))
        prefix = ""
        chosen = (mode or self.mode) if endpoint.mode_applies else ""
        if chosen:
            prefix = self.mode_prefix.replace("{mode}", chosen)
        return f"{self.base_url}{prefix}{path}"

    def _attempts(self, endpoint: Endpoint) -> int:
        return 1 if endpoint.retry == "never" else self._read_attempts

    async def _send_submit(self, endpoint: Endpoint, url: str, body: dict[str, Any]) -> Reply:
        payload = JsonBody(body)
        headers = {**self._headers(), "Content-Type": "application/json", "Content-Length": str(payload.length)}

        async def attempt() -> Reply | Again:
            try:
                async with self._http.stream(endpoint.method, url, content=payload, headers=headers) as response:
                    if response.status_code >= 500:
                        raise SubmitOutcomeUnknownError(
                            f"The upstream answered the {endpoint.name} request with HTTP {response.status_code}; "
                            "it was not sent again.",
                            http_status=response.status_code,
                        )
                    return await _reply(endpoint, response)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                # The connection never opened, so the upstream cannot have seen the job.
                return Again(
                    UpstreamUnavailableError(
                        f"Could not connect to the upstream ({type(exc).__name__}); the {endpoint.name} job was not "
                        "sent.",
                        hint="Check MJ_BASE_URL and the network, then call again.",
                    )
                )
            except httpx2.TransportError as exc:
                raise SubmitOutcomeUnknownError(
                    f"The connection failed after the {endpoint.name} request was sent "
                    f"({type(exc).__name__}); it was not sent again."
                ) from None

        return await retrying(attempt, attempts=self._attempts(endpoint), backoff=self._backoff, sleep=self._sleep)

    async def _read(self, endpoint: Endpoint, *, task_id: str | None = None, body: WireModel | None = None) -> Reply:
        url = self._url(endpoint, _TaskRef(task_id=task_id) if task_id is not None else body)
        payload = body.to_wire() if body is not None else None

        async def attempt() -> Reply | Again:
            try:
                async with self._http.stream(endpoint.method, url, json=payload, headers=self._headers()) as response:
                    reply = await _reply(endpoint, response)
            except httpx2.TransportError as exc:
                return Again(
                    UpstreamUnavailableError(
                        f"The upstream could not be reached for {endpoint.name} ({type(exc).__name__})."
                    )
                )
            failure = replies.transient_error(endpoint, reply)
            if failure is not None:
                return _again(failure, failure.retry_after if isinstance(failure, RateLimitedError) else None)
            replies.raise_for_http(endpoint, reply, self._scrub)
            return reply

        return await retrying(attempt, attempts=self._attempts(endpoint), backoff=self._backoff, sleep=self._sleep)

    def _backoff(self, attempt: int) -> float:
        return equal_jitter(attempt, self._jitter)


class _TaskRef(WireModel):
    task_id: str


async def _reply(endpoint: Endpoint, response: httpx2.Response) -> Reply:
    """The reply, read with a cap so that a huge or endless body is refused early."""
    status = response.status_code
    body = await read_capped(
        response.aiter_bytes(), replies.MAX_REPLY_BYTES, lambda: replies.too_large(endpoint, status)
    )
    return Reply(status, body, response.headers, response.request.url.path)


def _download_failure(response: httpx2.Response) -> Again:
    """Another attempt after a failed download (5xx, 429); a 4xx is final (the link expired)."""
    status = response.status_code
    message = f"Downloading the result file failed with HTTP {status}."
    if status < 500 and status != 429:
        raise UpstreamRejectedError(
            message, http_status=status, hint="The link may have expired; fetch the task again with get_task."
        )
    wait = replies.retry_after(response.headers.get("retry-after")) if status == 429 else None
    return _again(UpstreamUnavailableError(message, http_status=status), wait)


def _again(error: UpstreamError, retry_after: float | None) -> Again:
    """Another attempt after `error`, once its Retry-After has passed; a longer one than we wait is raised."""
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        raise error
    return Again(error, after=retry_after)
