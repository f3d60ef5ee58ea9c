"""MjClient: the upstream's operations over httpx2, one `Endpoint` row at a time.

What it owns: the auth header style, how a speed mode is delivered (a URL prefix, or a
`--fast`/`--relax`/`--turbo` prompt parameter), the account selection in the shape the upstream
reads, the largest body the upstream takes (all as its `upstreams.Profile` says, unless a setting
overrides it), sending each call the way its row of `endpoints.ENDPOINTS` says, and the retry
policy (`Endpoint.retry`):

- Reads (fetch, list, query, queue, seed) and result downloads are retried with jittered
  exponential backoff on transport failures, garbled replies, time-outs, 5xx and 429; a 429's
  Retry-After is waited out when it is at most `MAX_RETRY_AFTER` seconds and ends before the
  caller's deadline, and reported at once otherwise.
- A submit is sent once. If the connection could not even be opened, nothing reached the
  upstream and it is tried again; once bytes may have left, a failure is reported as
  `SubmitOutcomeUnknownError` so that nobody pays twice for one picture.
- A cancel is sent once.

Every wait is bounded as a whole, not per read: one request (connect, send, the whole reply) by
`timeout` (MJ_HTTP_TIMEOUT; a submit gets the time to send its body on top), one download with
all its attempts by `download_timeout`, and a read with all its attempts and pauses by the
caller's `deadline` (absolute, on the client's clock) when it passes one. Whatever a request
raises (every httpx2 error, a garbled body, odd bytes, JSON nested without end) leaves as an
error of `errors.py`; the method docstrings say which.

What a reply means (every dialect: NZ, PLUS, TA, new-api) is decided in `replies.py`, which
needs no connection. The transport is a seam: tests pass the simulator's ASGI transport and run
this very code. The key is only ever put in a request header, and every string of every reply
is masked (`replies.secret_forms`) before it becomes a model or a message.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar
from urllib.parse import quote

import anyio
import httpx2

from mj_mcp import __version__, replies
from mj_mcp.clock import Clock, SystemClock
from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import (
    InputError,
    ProtocolError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from mj_mcp.jsonbody import JsonBody
from mj_mcp.models import (
    AuthHeader,
    ChangeRequest,
    ConditionRequest,
    Mode,
    ModePrefix,
    Page,
    SubmitResult,
    Task,
    UploadRequest,
    WireModel,
)
from mj_mcp.querymodels import QueryRequest
from mj_mcp.replies import Reply
from mj_mcp.retrying import Again, Sleep, equal_jitter, retrying
from mj_mcp.streams import declared_too_large, read_capped
from mj_mcp.upstreams import DEFAULT_UPSTREAM, PROFILES, AccountSelection, Profile

__all__ = ["AuthHeader", "MjClient"]

READ_ATTEMPTS: Final = 3
MAX_RETRY_AFTER: Final = 30.0
"""A longer Retry-After is reported to the caller instead of being slept through."""
DEFAULT_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT: Final = 120.0
"""Seconds one download may take with all its attempts (a 64 MB video needs ~0.5 MB/s)."""
UPLOAD_BYTES_PER_SECOND: Final = 1024 * 1024
"""A submit's time limit grows by its body's size at this rate: a five-image blend is ~70 MB."""
MAX_IDS_PER_LIST: Final = 500
"""The most ids one list-by-condition request carries (`ConditionRequest`); more are asked in turns."""
TASK_ID_RULES: Final = (
    "taskId (as get_task takes it) must be 1 to 64 characters, not blank, without '/' or control characters"
)
_NOT_IN_AN_ID: Final = re.compile(r"[\x00-\x1f\x7f-\x9f/]")
_MODE_IN_PROMPT: Final = re.compile(r"(?<!\S)--(?:fast|relax|turbo)(?!\S)", re.IGNORECASE)
"""A speed-mode parameter the prompt already has (the user's own wins over the configured mode)."""
_NO_RECENT_TASKS: Final = (
    "The job may have been created, and this upstream cannot list its recent tasks: ask the user to look "
    "in the provider's dashboard before submitting again, so that it is not paid for twice."
)
_SELECTION_KEYS: Final = ("instanceId", "modes", "remix")
"""Account selection a request model carries at its top level (PLUS's shape)."""

_T = TypeVar("_T")

_REQUEST_ERRORS: Final = (
    httpx2.HTTPError,
    httpx2.InvalidURL,
    httpx2.StreamError,
    ValueError,  # odd bytes: UnicodeDecodeError, a malformed header value
    RecursionError,
    OSError,  # a transport that lets a socket error through unmapped
)
"""What sending a request and reading its reply can raise; `_failure` sorts it."""
_Failure = Literal["not_sent", "bad_url", "redirects", "garbled", "transport"]


class MjClient(AbstractAsyncContextManager["MjClient"]):
    """Async client for a midjourney-proxy compatible API.

    `submit` sends any paid job (the request model of its `Endpoint` row); the read methods
    (`fetch`, `list_by_condition`, `query`, `recent`, `queue`, `image_seed`), `cancel` and
    `download` each return a model or raise an error of `errors.py`. The connection stack (TLS
    context, proxy settings) is built at the first request, so that a server answers its first
    `tools/list` without paying for it.

    `clock` is the time `deadline`s are read on (the watcher's clock); `sleep` (default: the
    clock's) is the pause between attempts. `profile` is the upstream program (MJ_UPSTREAM);
    `auth_header` and `mode_prefix` default to its own, `account_filter` goes in its shape.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        profile: Profile = PROFILES[DEFAULT_UPSTREAM],
        auth_header: AuthHeader | None = None,
        mode: Mode | Literal[""] = "",
        mode_prefix: ModePrefix | None = None,
        account_filter: AccountSelection | None = None,
        timeout: float = 30.0,
        download_timeout: float = DOWNLOAD_TIMEOUT,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        jitter: Callable[[], float] = random.random,
        read_attempts: int = READ_ATTEMPTS,
        connections: httpx2.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.profile = profile
        self.auth_header: AuthHeader = auth_header or profile.auth_header
        self.mode: Mode | Literal[""] = mode
        self.mode_prefix: ModePrefix = mode_prefix or profile.mode_prefix
        self._account = account_filter.to_wire() if account_filter is not None else {}
        self._clock: Clock = clock or SystemClock()
        self._sleep = sleep or self._clock.sleep
        self._jitter = jitter
        self._read_attempts = max(1, read_attempts)
        self._scrub = replies.scrubber(self._api_key)
        self._redact = replies.secret_forms(self._api_key)
        self._timeout = timeout
        self._download_timeout = download_timeout
        self._transport = transport
        self._client: httpx2.AsyncClient | None = connections
        self._owns_connections = connections is None
        """False when `connections` came from another client (a tenant's, sharing one pool)."""

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

    @property
    def connections(self) -> httpx2.AsyncClient:
        """This client's connection pool, for clients of other keys to the same upstream to share
        (`connections=`); it stays this client's to close."""
        return self._http

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections (if any were opened); the client is not used afterwards."""
        if self._client is not None and self._owns_connections:
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
        `SubmitOutcomeUnknownError`, and `ProtocolError` (an unreadable or too large reply), mean the
        upstream may have accepted the job; every other error means it did not. A body larger than
        the profile accepts is `InputError`, before anything is sent.
        """
        if not endpoint.paid:
            raise ValueError(f"{endpoint.name} is not a job endpoint")
        url = self._url(endpoint, request, mode=mode)
        payload = JsonBody(self._body(endpoint, request, mode))
        self._check_size(endpoint, payload)
        try:
            reply = await self._send_submit(endpoint, url, payload)
        except SubmitOutcomeUnknownError as exc:
            if not self.profile.routes(ENDPOINTS["recent_tasks"]):
                exc.hint = _NO_RECENT_TASKS  # its own hint would send the model to a missing tool
            raise
        return replies.submit_result(endpoint, reply, self._scrub, self.profile)

    async def upload_images(self, request: UploadRequest, *, mode: Mode | None = None) -> list[str]:
        """Upload images; returns their hosted URLs (no task is created)."""
        result = await self.submit(ENDPOINTS["upload_images"], request, mode=mode)
        if isinstance(result.result, list):
            return result.result
        return [result.result] if result.result else []

    # -- reads -------------------------------------------------------------------------------
    # `deadline` (on the client's clock) caps a read with all its attempts and pauses; past it,
    # the read raises UpstreamTimeoutError (or the last error, when a pause would cross it).

    async def fetch(self, task_id: str, *, deadline: float | None = None) -> Task:
        """The task with that id; TaskNotFoundError when the upstream does not know it."""
        reply = await self._read(ENDPOINTS["get_task"], task_id=_checked_id(task_id), deadline=deadline)
        return replies.task_of(task_id, reply)

    async def list_by_condition(self, ids: list[str], *, deadline: float | None = None) -> list[Task]:
        """The tasks among `ids` that exist (missing ids are left out, order not guaranteed).

        An id that cannot be a task id (`TASK_ID_RULES`) is left out like a missing one, unasked,
        so that one bad id never fails a poll of the others.
        """
        wanted = [task_id for task_id in ids if _valid_id(task_id)]
        tasks: list[Task] = []
        for start in range(0, len(wanted), MAX_IDS_PER_LIST):
            body = ConditionRequest(ids=wanted[start : start + MAX_IDS_PER_LIST])
            reply = await self._read(ENDPOINTS["list_tasks"], body=body, deadline=deadline)
            if not reply.empty:
                tasks.extend(replies.parse_list(reply))
        return tasks

    async def query(self, request: QueryRequest, *, deadline: float | None = None) -> Page:
        """One page of the upstream's task search (`/mj/task/query`)."""
        reply = await self._read(ENDPOINTS["query_tasks"], body=request, deadline=deadline)
        return replies.parse(reply, Page, "a page of tasks")

    async def recent(self, *, deadline: float | None = None) -> list[Task]:
        """The upstream's latest tasks, newest first as it sends them."""
        return replies.parse_list(await self._read(ENDPOINTS["recent_tasks"], deadline=deadline))

    async def queue(self, *, deadline: float | None = None) -> list[Task]:
        """The tasks waiting in or running on the upstream's queue."""
        return replies.parse_list(await self._read(ENDPOINTS["task_queue"], deadline=deadline))

    async def image_seed(self, task_id: str, *, deadline: float | None = None) -> str:
        """The Midjourney seed of a finished image task."""
        endpoint = ENDPOINTS["image_seed"]
        reply = await self._read(endpoint, task_id=_checked_id(task_id), deadline=deadline)
        return replies.seed_of(endpoint, task_id, reply, self._scrub)

    async def cancel(self, task_id: str, *, deadline: float | None = None) -> SubmitResult | None:
        """Ask the upstream to cancel; returns its envelope when it sends one (TA sends none)."""
        endpoint = ENDPOINTS["cancel_task"]
        reply = await self._read(endpoint, task_id=_checked_id(task_id), deadline=deadline)
        return replies.cancel_result(endpoint, reply, self._scrub)

    async def download(
        self, url: str, *, max_bytes: int = DEFAULT_DOWNLOAD_BYTES, deadline: float | None = None
    ) -> tuple[bytes, str | None]:
        """Download a result file (image or video) the upstream pointed to: its bytes and media type.

        No key is sent. The upstream's own URLs are trusted (a self-hosted proxy on localhost must
        work), so no address guard here; URLs from tool arguments go through images.ImageLoader.
        All attempts end by `download_timeout` from now, or by `deadline` if sooner
        (UpstreamTimeoutError). A file that cannot be had (4xx, too large, garbled, a redirect loop,
        a bad URL) is UpstreamRejectedError; one that could not be had now is UpstreamUnavailableError.
        """
        ends = self._clock.now() + self._download_timeout
        ends = ends if deadline is None else min(ends, deadline)

        def too_large() -> Exception:
            return UpstreamRejectedError(
                f"The result file is larger than {max_bytes} bytes; not downloaded.",
                hint="Open the URL directly instead.",
            )

        async def exchange() -> tuple[bytes, str | None] | Again:
            async with self._http.stream("GET", url, follow_redirects=True) as response:
                if response.status_code >= 400:
                    return _download_failure(response)
                if declared_too_large(response.headers.get("content-length"), max_bytes):
                    raise too_large()
                body = await read_capped(response.aiter_bytes(), max_bytes, too_large)
                content_type = response.headers.get("content-type")
                return body, content_type.split(";")[0].strip() if content_type else None

        async def attempt() -> tuple[bytes, str | None] | Again:
            limit = ends - self._clock.now()
            if limit <= 0:
                raise UpstreamTimeoutError("No time was left to download the result file.")
            try:
                outcome = await _within(limit, exchange)
            except _REQUEST_ERRORS as exc:
                return _download_error(exc)
            if outcome is None:
                return Again(UpstreamTimeoutError(f"Downloading the result file did not finish within {limit:.3g} s."))
            return outcome

        return await self._retrying(attempt, self._read_attempts, ends)

    # -- plumbing ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        if not self._api_key:
            return {}
        if self.auth_header == "mj-api-secret":
            return {"mj-api-secret": self._api_key}
        if self.auth_header == "authorization":
            return {"Authorization": self._api_key}
        return {"Authorization": f"Bearer {self._api_key}"}

    def _body(self, endpoint: Endpoint, request: WireModel, mode: Mode | None) -> dict[str, Any]:
        """A job's JSON as this upstream reads it: mode in the prompt, account selection in its shape."""
        # Fields only another upstream reads are never sent: this one would ignore them at best.
        body = {k: v for k, v in request.to_wire().items() if k not in self.profile.unread(type(request))}
        chosen = (mode or self.mode) if endpoint.mode_applies else ""
        prompt = body.get("prompt")
        # A job without a prompt (a button, a blend) runs in the account's default mode here; a
        # prompt that names a mode already keeps the user's own.
        in_prompt = bool(chosen) and self.mode_prefix == "prompt" and isinstance(prompt, str)
        if in_prompt and prompt and _MODE_IN_PROMPT.search(prompt) is None:
            body["prompt"] = f"{prompt} --{chosen}"
        if isinstance(request, ChangeRequest) and self.profile.reroll_index:
            body.setdefault("index", 1)  # new-api refuses a change without one, REROLL included
        nested = "account_filter" in type(request).model_fields or self.profile.account_filter == "nested"
        if nested:
            moved = {key: body.pop(key) for key in _SELECTION_KEYS if key in body}
            selection = {**self._account, **moved, **body.get("accountFilter", {})}
            if selection:
                body["accountFilter"] = selection
        elif self.profile.account_filter == "top_level" and endpoint.creates_task:
            body = {**self._account, **body}
        return body

    def _check_size(self, endpoint: Endpoint, payload: JsonBody) -> None:
        limit = self.profile.max_body_bytes
        if limit is None or payload.length <= limit:
            return
        raise InputError(
            f"The {endpoint.name} request would be {payload.length / 1e6:.1f} MB of JSON, but "
            f"{self.profile.title} accepts at most {limit / 1e6:g} MB (HTTP 413 otherwise). Nothing was sent.",
            hint="Pass fewer or smaller images (as base64 each weighs a third more than its file), or image "
            "URLs where the tool takes them, and call again.",
        )

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
        if chosen and self.mode_prefix != "prompt":
            prefix = self.mode_prefix.replace("{mode}", chosen)
        return f"{self.base_url}{prefix}{path}"

    def _attempts(self, endpoint: Endpoint) -> int:
        return 1 if endpoint.retry == "never" else self._read_attempts

    async def _send_submit(self, endpoint: Endpoint, url: str, payload: JsonBody) -> Reply:
        headers = {**self._headers(), "Content-Type": "application/json", "Content-Length": str(payload.length)}
        limit = self._timeout + payload.length / UPLOAD_BYTES_PER_SECOND
        answered = False  # whether the reply's head came: from then on the upstream has the job

        async def exchange() -> Reply:
            nonlocal answered
            async with self._http.stream(endpoint.method, url, content=payload, headers=headers) as response:
                answered = True
                if response.status_code < 500:
                    return await self._reply(endpoint, response)
                # Unknown, unless the body says nothing was started (new-api's gateway).
                try:
                    reply = await self._reply(endpoint, response)
                except (ProtocolError, *_REQUEST_ERRORS):
                    reply = Reply(response.status_code)
                raise replies.submit_failure(endpoint, reply, self._scrub, self.profile)

        async def attempt() -> Reply | Again:
            try:
                reply = await _within(limit, exchange)
            except _REQUEST_ERRORS as exc:
                return _submit_error(endpoint, exc, answered=answered)
            if reply is None:
                raise SubmitOutcomeUnknownError(
                    f"The upstream did not answer the {endpoint.name} request within {limit:.3g} s; "
                    "it was not sent again."
                )
            return reply

        return await self._retrying(attempt, self._attempts(endpoint), None)

    async def _read(
        self,
        endpoint: Endpoint,
        *,
        task_id: str | None = None,
        body: WireModel | None = None,
        deadline: float | None = None,
    ) -> Reply:
        url = self._url(endpoint, _TaskRef(task_id=task_id) if task_id is not None else body)
        payload = body.to_wire() if body is not None else None

        async def exchange() -> Reply:
            async with self._http.stream(endpoint.method, url, json=payload, headers=self._headers()) as response:
                return await self._reply(endpoint, response)

        async def attempt() -> Reply | Again:
            limit = self._timeout if deadline is None else min(self._timeout, deadline - self._clock.now())
            if limit <= 0:
                raise UpstreamTimeoutError(f"No time was left for {endpoint.name}: the caller's deadline has passed.")
            try:
                reply = await _within(limit, exchange)
            except _REQUEST_ERRORS as exc:
                return _read_error(endpoint, exc)
            if reply is None:
                return Again(UpstreamTimeoutError(f"The upstream did not answer {endpoint.name} within {limit:.3g} s."))
            failure = replies.transient_error(endpoint, reply)
            if failure is not None:
                return _again(failure, failure.retry_after if isinstance(failure, RateLimitedError) else None)
            replies.raise_for_http(endpoint, reply, self._scrub, self.profile)
            return reply

        return await self._retrying(attempt, self._attempts(endpoint), deadline)

    async def _reply(self, endpoint: Endpoint, response: httpx2.Response) -> Reply:
        """The reply, read with a cap so that a huge or endless body is refused early (or unread)."""
        status = response.status_code

        def too_large() -> Exception:
            return replies.too_large(endpoint, status)

        if declared_too_large(response.headers.get("content-length"), replies.MAX_REPLY_BYTES):
            raise too_large()
        body = await read_capped(response.aiter_bytes(), replies.MAX_REPLY_BYTES, too_large)
        return Reply(status, body, response.headers, response.request.url.path, redact=self._redact)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[_T | Again]], attempts: int, deadline: float | None
    ) -> _T:
        def time_left() -> float:
            assert deadline is not None
            return deadline - self._clock.now()

        return await retrying(
            attempt,
            attempts=attempts,
            backoff=self._backoff,
            sleep=self._sleep,
            time_left=None if deadline is None else time_left,
        )

    def _backoff(self, attempt: int) -> float:
        return equal_jitter(attempt, self._jitter)


class _TaskRef(WireModel):
    task_id: str


# -- task ids ------------------------------------------------------------------------------------


def _valid_id(task_id: str) -> bool:
    return 0 < len(task_id) <= 64 and not task_id.isspace() and _NOT_IN_AN_ID.search(task_id) is None


def _checked_id(task_id: str) -> str:
    """`task_id` if it can be one; else InputError before any request is built."""
    if not _valid_id(task_id):
        shown = task_id if len(task_id) <= 70 else f"{task_id[:70]}…"
        raise InputError(
            f"{shown!r} is not a task id: {TASK_ID_RULES}.",
            hint="Pass the id a submit returned; recent_tasks lists the latest tasks.",
        )
    return task_id


# -- failures ------------------------------------------------------------------------------------


async def _within(seconds: float, work: Callable[[], Awaitable[_T]]) -> _T | None:
    """`work()`'s result, or None when it did not finish within `seconds` (it is cancelled then)."""
    with anyio.move_on_after(seconds):
        return await work()
    return None


def _failure(exc: BaseException) -> _Failure:
    """What a request's exception says about the request."""
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return "not_sent"  # no connection was had, so nothing left
    if isinstance(exc, httpx2.InvalidURL | httpx2.UnsupportedProtocol):
        return "bad_url"
    if isinstance(exc, httpx2.TooManyRedirects):
        return "redirects"
    if isinstance(exc, httpx2.DecodingError | ValueError | RecursionError):
        return "garbled"
    return "transport"


def _read_error(endpoint: Endpoint, exc: BaseException) -> Again:
    """Another attempt after a read failed (a read may be repeated); a bad URL is raised at once."""
    kind, name = _failure(exc), type(exc).__name__
    if kind in ("bad_url", "redirects"):
        raise UpstreamUnavailableError(
            f"The request for {endpoint.name} could not be made ({name}).", hint="Check MJ_BASE_URL."
        )
    if kind == "garbled":
        return Again(ProtocolError(f"The upstream's reply to {endpoint.name} could not be decoded ({name})."))
    return Again(UpstreamUnavailableError(f"The upstream could not be reached for {endpoint.name} ({name})."))


def _submit_error(endpoint: Endpoint, exc: BaseException, *, answered: bool) -> Again:
    """A submit's failure: tried again only if it never left; once it may have, never "try again"."""
    kind, name = _failure(exc), type(exc).__name__
    if not answered and kind == "not_sent":
        # The connection never opened, so the upstream cannot have seen the job.
        return Again(
            UpstreamUnavailableError(
                f"Could not connect to the upstream ({name}); the {endpoint.name} job was not sent.",
                hint="Check MJ_BASE_URL and the network, then call again.",
            )
        )
    if not answered and kind == "bad_url":
        raise UpstreamUnavailableError(
            f"The {endpoint.name} request could not be made ({name}); the job was not sent.",
            hint="Check MJ_BASE_URL, then call again.",
        )
    what = "its reply could not be decoded" if kind == "garbled" else "the connection failed"
    raise SubmitOutcomeUnknownError(f"The {endpoint.name} request was sent but {what} ({name}); it was not sent again.")


def _download_error(exc: BaseException) -> Again:
    """Another attempt after a download failed in transit; a file that cannot be had is raised at once."""
    kind, name = _failure(exc), type(exc).__name__
    hint = "Open the URL directly, or fetch the task again with get_task."
    if kind == "bad_url":
        raise UpstreamRejectedError("The result file URL is not valid.", hint="Fetch the task again with get_task.")
    if kind == "redirects":
        raise UpstreamRejectedError(f"The result file URL redirects without end ({name}).", hint=hint)
    if kind == "garbled":
        raise UpstreamRejectedError(f"The result file could not be decoded ({name}).", hint=hint)
    return Again(UpstreamUnavailableError(f"Downloading the result file failed ({name})."))


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
