"""MjClient: one async method per upstream endpoint, over httpx2.

What it owns: the auth header style, the speed-mode URL prefix, turning every reply dialect
(NZ, PLUS, TA, new-api; see docs/upstream-api.md) into a model or an error of `errors.py`,
and the retry policy:

- Reads (fetch, list, query, queue, seed, downloads) are retried with jittered exponential
  backoff on transport failures, 5xx and 429 (honouring Retry-After).
- A submit is sent once. If the connection could not even be opened, nothing reached the
  upstream and it is tried again; once bytes may have left, a failure is reported as
  `SubmitOutcomeUnknownError` so that nobody pays twice for one picture.

The transport is a seam: tests pass the simulator's ASGI transport and run this very code.
The key is only ever put in a request header; every message built from a reply is scrubbed.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractAsyncContextManager
from itertools import groupby
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeVar, cast
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mj_mcp import __version__
from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import (
    AuthenticationError,
    BannedPromptError,
    ProtocolError,
    QueueFullError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    TaskNotFoundError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.models import (
    CODE_BANNED_PROMPT,
    CODE_EXISTED_MODAL,
    CODE_FAILURE,
    CODE_IN_QUEUE,
    CODE_NOT_FOUND,
    CODE_QUEUE_REJECTED,
    CODE_SUCCESS,
    ActionRequest,
    AuthHeader,
    BlendRequest,
    ChangeRequest,
    ConditionRequest,
    DescribeRequest,
    EditsRequest,
    ImagineRequest,
    ModalRequest,
    Mode,
    ModePrefix,
    Page,
    QueryRequest,
    ShortenRequest,
    ShowRequest,
    SimpleChangeRequest,
    SubmitResult,
    SwapFaceRequest,
    Task,
    UploadRequest,
    VideoRequest,
    WireModel,
)

__all__ = ["AuthHeader", "MjClient"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

ACCEPTED_CODES: Final = frozenset({CODE_SUCCESS, CODE_IN_QUEUE, CODE_EXISTED_MODAL})
READ_ATTEMPTS: Final = 3
BACKOFF_BASE: Final = 0.5
BACKOFF_CAP: Final = 8.0
MAX_RETRY_AFTER: Final = 30.0
MAX_REPLY_BYTES: Final = 32 * 1024 * 1024
DEFAULT_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024
BODY_PIECE_BYTES: Final = 1024 * 1024
"""A submit body goes out in pieces of at most this size (see `JsonBody`)."""

# Upstream messages are often Chinese; a short English gloss helps every model and reader.
_GLOSSES: Final[dict[str, str]] = {
    "prompt不能为空": "the prompt is empty",
    "Prompt 不能为空": "the prompt is empty",
    "可能包含敏感词": "the prompt may contain a banned word",
    "base64格式错误": "an image is not valid base64",
    "关联任务不存在或已失效": "the referenced task does not exist or has expired",
    "关联任务状态错误": "the referenced task is not in a state that allows this (it must be SUCCESS)",
    "关联任务不允许执行变化": "the referenced task does not allow this change",
    "未知的 Action 类型": "unknown button (customId)",
    "无可用的账号实例": "no upstream account is available",
    "队列已满": "the queue is full",
    "content参数错误": "content must look like '<taskId> U1..U4|V1..V4|R'",
    "图片参数错误，2~5张图片": "blend needs 2 to 5 images",
    "参数错误": "a parameter is wrong",
    "禁止上传": "image uploads are disabled on this upstream",
    "视频功能未启用": "video is not enabled on this upstream",
    "image或prompt不能为空": "image and prompt are both required",
    "人脸图片和目标图片不能相同": "the face and target images must differ",
    "job id 格式错误": "the job id is not a Midjourney job UUID",
    "演示模式，禁止操作": "this account may not cancel tasks (admin only)",
    "task_no_found": "task not found",
    "task_not_found": "task not found",
    "quota_not_enough": "the account's quota is used up",
}

_TaskList = TypeAdapter(list[Task])
_M = TypeVar("_M", bound=BaseModel)


def _gloss(text: str) -> str:
    for needle, english in _GLOSSES.items():
        if needle in text:
            return f"{text} ({english})"
    return text


class MjClient(AbstractAsyncContextManager["MjClient"]):
    """Async client for a midjourney-proxy compatible API."""

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
        # No default auth headers on the client: downloads of result images go to CDNs
        # that must never see the key. `_headers()` adds it to API calls only.
        self._http = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": f"mj-mcp/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
            trust_env=transport is None,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

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

    async def imagine(self, request: ImagineRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["imagine"], request, mode=mode)

    async def blend(self, request: BlendRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["blend"], request, mode=mode)

    async def describe(self, request: DescribeRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["describe"], request, mode=mode)

    async def shorten(self, request: ShortenRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["shorten"], request, mode=mode)

    async def action(self, request: ActionRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["action"], request, mode=mode)

    async def modal(self, request: ModalRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["modal"], request, mode=mode)

    async def swap_face(self, request: SwapFaceRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["swap_face"], request, mode=mode)

    async def video(self, request: VideoRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["video"], request, mode=mode)

    async def edit(self, request: EditsRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["edit"], request, mode=mode)

    async def show(self, request: ShowRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["show"], request, mode=mode)

    async def change(self, request: ChangeRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["change"], request, mode=mode)

    async def simple_change(self, request: SimpleChangeRequest, *, mode: Mode | None = None) -> SubmitResult:
        return await self.submit(ENDPOINTS["simple_change"], request, mode=mode)

    async def upload_images(self, request: UploadRequest, *, mode: Mode | None = None) -> list[str]:
        """Upload images; returns their hosted URLs (no task is created)."""
        result = await self.submit(ENDPOINTS["upload_images"], request, mode=mode)
        if isinstance(result.result, list):
            return result.result
        return [result.result] if result.result else []

    async def submit(self, endpoint: Endpoint, request: WireModel, *, mode: Mode | None = None) -> SubmitResult:
        """Send one paid job's request. Never re-sent once it may have arrived."""
        if not endpoint.paid:
            raise ValueError(f"{endpoint.name} is not a job endpoint")
        url = self._url(endpoint, request, mode=mode)
        body = request.to_wire()
        response = await self._send_submit(endpoint, url, body)
        return self._submit_result(endpoint, response)

    # -- reads -------------------------------------------------------------------------------

    async def fetch(self, task_id: str) -> Task:
        """The task with that id; TaskNotFoundError when the upstream does not know it."""
        response = await self._read(ENDPOINTS["get_task"], task_id=task_id)
        if response.status_code == 204 or not response.content.strip():
            raise TaskNotFoundError(f"Task {task_id} was not found.", http_status=response.status_code)
        return self._parse(response, Task, "a task")

    async def list_by_condition(self, ids: list[str]) -> list[Task]:
        """The tasks among `ids` that exist (missing ids are left out, order not guaranteed)."""
        if not ids:
            return []
        response = await self._read(ENDPOINTS["list_tasks"], body=ConditionRequest(ids=ids))
        if not response.content.strip():
            return []
        return self._parse_list(response)

    async def query(self, request: QueryRequest) -> Page:
        response = await self._read(ENDPOINTS["query_tasks"], body=request)
        return self._parse(response, Page, "a page of tasks")

    async def recent(self) -> list[Task]:
        return self._parse_list(await self._read(ENDPOINTS["recent_tasks"]))

    async def queue(self) -> list[Task]:
        return self._parse_list(await self._read(ENDPOINTS["task_queue"]))

    async def image_seed(self, task_id: str) -> str:
        response = await self._read(ENDPOINTS["image_seed"], task_id=task_id)
        result = self._envelope(ENDPOINTS["image_seed"], response)
        if result.code != CODE_SUCCESS or not isinstance(result.result, str) or not result.result:
            raise UpstreamRejectedError(
                f"No seed for task {task_id}: {_gloss(result.description) or 'the upstream gave none'}.",
                code=result.code,
                hint="Only finished image tasks have a seed; check the task with get_task.",
            )
        return result.result

    async def cancel(self, task_id: str) -> SubmitResult | None:
        """Ask the upstream to cancel; returns its envelope when it sends one (TA sends none)."""
        response = await self._read(ENDPOINTS["cancel_task"], task_id=task_id)
        if not response.content.strip():
            return None
        result = self._envelope(ENDPOINTS["cancel_task"], response)
        if result.code not in ACCEPTED_CODES and result.code != 0:
            self._raise_for_code(ENDPOINTS["cancel_task"], result)
        return result

    async def download(self, url: str, *, max_bytes: int = DEFAULT_DOWNLOAD_BYTES) -> tuple[bytes, str | None]:
        """Download a result file (image or video) the upstream pointed to. No key is sent.

        The upstream's own URLs are trusted (a self-hosted proxy on localhost must work), so
        no address guard here; URLs from tool arguments go through images.ImageLoader instead.
        """
        last: Exception | None = None
        for attempt in range(self._read_attempts):
            try:
                async with self._http.stream("GET", url, follow_redirects=True) as response:
                    if response.status_code >= 400:
                        if response.status_code < 500 and response.status_code != 429:
                            raise UpstreamRejectedError(
                                f"Downloading the result file failed with HTTP {response.status_code}.",
                                http_status=response.status_code,
                                hint="The link may have expired; fetch the task again with get_task.",
                            )
                        raise UpstreamUnavailableError(
                            f"Downloading the result file failed with HTTP {response.status_code}.",
                            http_status=response.status_code,
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise UpstreamRejectedError(
                                f"The result file is larger than {max_bytes} bytes; not downloaded.",
                                hint="Open the URL directly instead.",
                            )
                        chunks.append(chunk)
                    content_type = response.headers.get("content-type")
                    return b"".join(chunks), content_type.split(";")[0].strip() if content_type else None
            except UpstreamUnavailableError as exc:
                last = exc
            except httpx2.TransportError as exc:
                last = UpstreamUnavailableError(f"Downloading the result file failed ({type(exc).__name__}).")
            except httpx2.InvalidURL:
                raise UpstreamRejectedError(
                    "The result file URL is not valid.", hint="Fetch the task again with get_task."
                ) from None
            if attempt + 1 < self._read_attempts:
                await self._sleep(self._backoff(attempt))
        assert last is not None
        raise last

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
        if "{id}" in path:
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

    async def _send_submit(self, endpoint: Endpoint, url: str, body: dict[str, Any]) -> httpx2.Response:
        payload = JsonBody(body)
        headers = {**self._headers(), "Content-Type": "application/json", "Content-Length": str(payload.length)}
        for attempt in range(self._read_attempts):
            try:
                response = await self._http.request(endpoint.method, url, content=payload, headers=headers)
            except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
                # The connection never opened, so the upstream cannot have seen the job.
                if attempt + 1 < self._read_attempts:
                    await self._sleep(self._backoff(attempt))
                    continue
                raise UpstreamUnavailableError(
                    f"Could not connect to the upstream ({type(exc).__name__}); the {endpoint.name} job was not sent.",
                    hint="Check MJ_BASE_URL and the network, then call again.",
                ) from None
            except httpx2.TransportError as exc:
                raise SubmitOutcomeUnknownError(
                    f"The connection failed after the {endpoint.name} request was sent "
                    f"({type(exc).__name__}); it was not sent again."
                ) from None
            if response.status_code >= 500:
                raise SubmitOutcomeUnknownError(
                    f"The upstream answered the {endpoint.name} request with HTTP {response.status_code}; "
                    "it was not sent again.",
                    http_status=response.status_code,
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(
        self,
        endpoint: Endpoint,
        *,
        task_id: str | None = None,
        body: WireModel | None = None,
    ) -> httpx2.Response:
        name = endpoint.name
        request: WireModel | None = body
        if task_id is not None:
            request = _TaskRef(task_id=task_id)
        url = self._url(endpoint, request)
        payload = body.to_wire() if body is not None else None
        attempts = self._read_attempts if endpoint.retry == "reads" else 1
        last: UpstreamError | None = None
        for attempt in range(attempts):
            delay: float | None = None
            try:
                response = await self._http.request(endpoint.method, url, json=payload, headers=self._headers())
            except httpx2.TransportError as exc:
                last = UpstreamUnavailableError(f"The upstream could not be reached for {name} ({type(exc).__name__}).")
            else:
                if response.status_code == 429:
                    retry_after = _retry_after(response.headers)
                    last = RateLimitedError("The upstream is rate limiting requests.", retry_after=retry_after)
                    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
                        raise last
                    delay = retry_after
                elif response.status_code >= 500:
                    last = UpstreamUnavailableError(
                        f"The upstream failed with HTTP {response.status_code} on {name}.",
                        http_status=response.status_code,
                    )
                else:
                    self._raise_for_http(endpoint, response)
                    return response
            if attempt + 1 < attempts:
                await self._sleep(delay if delay is not None else self._backoff(attempt))
        assert last is not None
        raise last

    def _backoff(self, attempt: int) -> float:
        # Full jitter: spreads retries of many waiters apart.
        return min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt)) * (0.5 + self._jitter() / 2)

    def _scrub(self, text: str) -> str:
        text = text.strip()
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text[:300] + ("…" if len(text) > 300 else "")

    def _json(self, response: httpx2.Response) -> Any:
        if len(response.content) > MAX_REPLY_BYTES:
            raise ProtocolError("The upstream reply is too large.", http_status=response.status_code)
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError):
            return _NOT_JSON

    def _raise_for_http(self, endpoint: Endpoint, response: httpx2.Response) -> None:
        """Map non-2xx statuses of a (non-5xx, non-429) reply to errors."""
        status = response.status_code
        if status < 300:
            if _is_web_page(response):
                # new-api answers the routes it does not relay with its dashboard page, HTTP 200.
                raise _missing_route(endpoint, _requested_path(response), web_page=True)
            return
        if status in (401, 403):
            raise AuthenticationError(f"The upstream refused the key (HTTP {status}).", http_status=status, code=None)
        data = self._json(response) if response.content.strip() else None
        if isinstance(data, dict):
            envelope = self._error_envelope(cast(dict[str, Any], data))
            if envelope is not None:
                code, text = envelope
                if "task_no_found" in text or "task_not_found" in text:
                    code = CODE_NOT_FOUND
                raise self._rejection(endpoint, code, text, status, {})
        if status == 404:
            if endpoint.task_in_path:
                raise TaskNotFoundError(f"{_task_not_found_text(endpoint)}.", http_status=404)
            raise _missing_route(endpoint, _requested_path(response))
        text = response.text if response.content.strip() else ""
        raise UpstreamRejectedError(
            f"The upstream rejected {endpoint.name} with HTTP {status}"
            + (f": {_gloss(self._scrub(text))}" if text else "."),
            http_status=status,
        )

    @staticmethod
    def _error_envelope(data: dict[str, Any]) -> tuple[int | None, str] | None:
        """(code, text) of the error bodies the dialects use, or None if not one of them."""
        if isinstance(data.get("code"), int) and ("description" in data or "message" in data):
            text = data.get("description") or data.get("message") or ""
            return int(data["code"]), str(text)
        if "error" in data and isinstance(data.get("status"), int):  # Spring Boot error JSON
            return None, f"{data.get('error')}: the request body was not accepted"
        error = data.get("error")
        if isinstance(error, dict):  # new-api's own auth/quota errors
            return None, str(error.get("message", ""))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        return None

    def _envelope(self, endpoint: Endpoint, response: httpx2.Response) -> SubmitResult:
        raw = self._json(response)
        if not isinstance(raw, dict):
            raise ProtocolError(
                f"The upstream's reply to {endpoint.name} is not a JSON object.",
                http_status=response.status_code,
            )
        data = cast(dict[str, Any], raw)
        if data.get("success") is False and "code" in data:
            # TA's second envelope: {"success": false, "code": -1, "message": ...} with HTTP 200.
            raise self._rejection(endpoint, None, str(data.get("message") or ""), response.status_code, {})
        try:
            return SubmitResult.model_validate(data)
        except PydanticValidationError:
            raise ProtocolError(
                f"The upstream's reply to {endpoint.name} has no valid code.",
                http_status=response.status_code,
            ) from None

    def _submit_result(self, endpoint: Endpoint, response: httpx2.Response) -> SubmitResult:
        if response.status_code == 429:
            raise RateLimitedError(
                f"The upstream is rate limiting; the {endpoint.name} job was not accepted.",
                retry_after=_retry_after(response.headers),
            )
        self._raise_for_http(endpoint, response)
        try:
            result = self._envelope(endpoint, response)
        except ProtocolError as exc:
            # A 2xx whose body is unreadable may still mean the job was created and paid for.
            raise ProtocolError(
                exc.message,
                http_status=exc.http_status,
                hint=f"{SubmitOutcomeUnknownError.hint} If this keeps happening, {ProtocolError.hint[0].lower()}"
                f"{ProtocolError.hint[1:]}",
            ) from None
        if result.code in ACCEPTED_CODES:
            if endpoint.creates_task and result.task_id is None:
                raise SubmitOutcomeUnknownError(
                    f"The upstream accepted {endpoint.name} (code {result.code}) but returned no task id."
                )
            return result
        self._raise_for_code(endpoint, result)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for_code(self, endpoint: Endpoint, result: SubmitResult) -> None:
        raise self._rejection(endpoint, result.code, result.description, 200, result.properties)

    def _rejection(
        self,
        endpoint: Endpoint,
        code: int | None,
        text: str,
        status: int,
        properties: Mapping[str, Any],
    ) -> UpstreamError:
        text = _gloss(self._scrub(text)) or "no reason given"
        if code == CODE_NOT_FOUND:
            # Code 3 is also "no account can take this job" (无可用的账号实例, 账号不可用, no HD
            # account for an HD video); only a call that names a task can be missing one.
            if not endpoint.references_task or any(word in text for word in ACCOUNT_WORDS):
                return UpstreamRejectedError(
                    f"The upstream has no account available for {endpoint.name}: {text}",
                    code=code,
                    http_status=status,
                    hint="Nothing was started. Try again later, or with another mode (fast/relax/turbo); if it "
                    "persists, the upstream's Midjourney accounts need attention.",
                )
            return TaskNotFoundError(f"{_task_not_found_text(endpoint)}: {text}", code=code, http_status=status)
        if code == CODE_BANNED_PROMPT:
            word = properties.get("bannedWord")
            word_text = f" (banned word: {word!r})" if isinstance(word, str) and word else ""
            return BannedPromptError(f"The upstream refused the prompt{word_text}: {text}", banned_word=word or None)
        full = "队列已满" in text or "queue full" in text.lower() or "queue is full" in text.lower()
        if code == CODE_QUEUE_REJECTED or (code == CODE_FAILURE and full):
            return QueueFullError(f"The upstream queue is full: {text}", code=code, http_status=status)
        if code == 30:  # new-api: group saturated
            return RateLimitedError(f"The upstream is saturated: {text}", retry_after=None)
        if code == CODE_FAILURE:
            return UpstreamRejectedError(
                f"The upstream failed to accept {endpoint.name}: {text}",
                code=code,
                http_status=status,
                hint="Try again in a minute; if it keeps failing, the upstream account may be unavailable.",
            )
        code_text = f" (code {code})" if code is not None else ""
        return UpstreamRejectedError(
            f"The upstream rejected {endpoint.name}{code_text}: {text}", code=code, http_status=status
        )

    def _parse(self, response: httpx2.Response, model: type[_M], what: str) -> _M:
        data = self._json(response)
        try:
            return model.model_validate(data)
        except PydanticValidationError:
            raise ProtocolError(
                f"The upstream sent something that is not {what}.", http_status=response.status_code
            ) from None

    def _parse_list(self, response: httpx2.Response) -> list[Task]:
        data = self._json(response)
        if isinstance(data, dict):
            # Some deployments page their lists.
            data = cast(dict[str, Any], data).get("content", data)
        try:
            return _TaskList.validate_python(data)
        except PydanticValidationError:
            raise ProtocolError(
                "The upstream sent something that is not a list of tasks.", http_status=response.status_code
            ) from None


class _TaskRef(WireModel):
    task_id: str


_JSON_ESCAPED: Final = bytes(range(0x20)) + b'"\\'
"""The ASCII characters JSON does not write as they are."""
_LONG_TEXT: Final = 64 * 1024


def _dumps(value: Any) -> bytes:
    # Exactly what httpx2 sends for json=: the bytes on the wire stay the same.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _plain_ascii(text: str) -> bool:
    """Whether JSON writes `text` between its quotes unchanged, one byte per character."""
    if not text.isascii():
        return False
    for start in range(0, len(text), BODY_PIECE_BYTES):
        piece = text[start : start + BODY_PIECE_BYTES].encode("ascii")
        if len(piece.translate(None, _JSON_ESCAPED)) != len(piece):
            return False
    return True


class JsonBody:
    """A request body in JSON that is encoded as it is sent, one piece at a time.

    Why: a blend carries up to five images of up to 10 MiB as base64 data URIs, about 70 MB of
    text. `json=` makes the whole JSON text, then its UTF-8 bytes, and the connection stack copies
    those bytes again while sending, so the peak held several copies of the images. Here a long
    string that JSON leaves unchanged (base64 is such a string) stays the `str` the request already
    holds and is encoded `BODY_PIECE_BYTES` at a time as the connection takes it; everything else
    is encoded up front. The bytes sent are those of `json=`, and `length` is known beforehand, so
    the request still carries Content-Length. Not a generator: every attempt iterates it afresh.
    """

    def __init__(self, value: Any) -> None:
        pieces: list[bytes | str] = []
        _json_pieces(value, pieces)
        self._pieces: list[bytes | str] = []
        for is_text, run in groupby(pieces, key=lambda piece: isinstance(piece, str)):
            if is_text:
                self._pieces.extend(run)
            else:
                self._pieces.append(b"".join(cast(Iterator[bytes], run)))
        # A str piece is plain ASCII: one byte per character.
        self.length = sum(len(piece) for piece in self._pieces)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            for start in range(0, len(piece), BODY_PIECE_BYTES):
                part = piece[start : start + BODY_PIECE_BYTES]
                yield part.encode("ascii") if isinstance(part, str) else part


def _json_pieces(value: Any, out: list[bytes | str]) -> None:
    """Append `value` as JSON to `out`: bytes, or a long plain-ASCII str to encode later."""
    if isinstance(value, str) and len(value) >= _LONG_TEXT and _plain_ascii(value):
        out.extend((b'"', value, b'"'))
    elif isinstance(value, dict) and all(isinstance(key, str) for key in cast(dict[Any, Any], value)):
        out.append(b"{")
        for number, (key, item) in enumerate(cast(dict[str, Any], value).items()):
            out.append((b"," if number else b"") + _dumps(key) + b":")
            _json_pieces(item, out)
        out.append(b"}")
    elif isinstance(value, list | tuple):
        out.append(b"[")
        for number, item in enumerate(cast(list[Any] | tuple[Any, ...], value)):
            if number:
                out.append(b",")
            _json_pieces(item, out)
        out.append(b"]")
    else:
        out.append(_dumps(value))


_NOT_JSON: Final = object()


ACCOUNT_WORDS: Final = ("账号", "account", "Account", "实例")


def _requested_path(response: httpx2.Response) -> str | None:
    try:
        return response.request.url.path
    except RuntimeError:  # a response built without a request
        return None


def _is_web_page(response: httpx2.Response) -> bool:
    if "html" in response.headers.get("content-type", "").lower():
        return True
    return response.content[:64].lstrip().lower().startswith((b"<!doctype html", b"<html"))


def _missing_route(endpoint: Endpoint, requested: str | None, *, web_page: bool = False) -> UpstreamRejectedError:
    """HTTP 404 without an error body, or a web page where JSON belongs: no such route upstream.

    Either way the error carries HTTP 404, so that the poller falls back to per-task reads.
    """
    answered = "answered with a web page instead of JSON" if web_page else "answered HTTP 404"
    if not web_page and requested and requested != endpoint.path and requested.endswith(endpoint.path):
        prefix = requested.removesuffix(endpoint.path)
        return UpstreamRejectedError(
            f"The upstream has no route {requested} (HTTP 404): it does not take the speed-mode prefix "
            f"{prefix!r}. Nothing was started.",
            http_status=404,
            hint="Call again without mode, or ask the user to set MJ_MODE_PREFIX to the other style "
            "('/{mode}' or '/mj-{mode}') or to clear MJ_MODE.",
        )
    if endpoint.missing_route_hint is not None:
        hint = endpoint.missing_route_hint
    elif web_page:
        hint = (
            "Gateways such as new-api relay only some calls; use another tool for the same result. Only if "
            "every call answers like this does MJ_BASE_URL point at a website instead of its API."
        )
    else:
        hint = "This upstream does not support it; check MJ_BASE_URL, or use another tool for the same result."
    return UpstreamRejectedError(
        f"This upstream does not offer {endpoint.name} ({endpoint.path} {answered}).",
        http_status=404,
        hint=hint,
    )


def _task_not_found_text(endpoint: Endpoint) -> str:
    if endpoint.paid:
        return "The task this refers to was not found"
    return "The task was not found"


def _retry_after(headers: httpx2.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard
