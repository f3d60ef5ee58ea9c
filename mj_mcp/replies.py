"""Upstream replies → models or errors: every reply dialect in one place, with no HTTP client.

The upstreams (the original midjourney-proxy, trueai-org's TA, the PLUS forks, the new-api
gateway) answer failures in several shapes: an envelope `{"code", "description"}` with HTTP 200,
TA's second envelope `{"success": false, "code": -1, "message"}`, Spring Boot's error JSON,
new-api's `{"error": {"message"}}`, a bare 404, or a dashboard web page where JSON belongs.
The functions here take one `Reply` (status, headers, body, the path that was asked for) and
return the model it carries or the error of `errors.py` it means, so that each dialect can be
tested as one row of a table. What a reply means may depend on the upstream program (code 21,
new-api's gateway refusals): each reading takes the `Profile` of MJ_UPSTREAM, and a reply that
bears another program's fingerprint says which MJ_UPSTREAM fits. Upstream texts are put in
English by `glossary.english`.

The key never leaves: `secret_forms` spells the API key the ways an upstream may echo it, the
client puts those spellings on every `Reply`, and `_json` masks them in every string (keys
included) of every parsed body, so no model built here carries the key; `scrub` does the same
for raw text that becomes part of a message. `_json` also cuts JSON nested deeper than
`MAX_JSON_DEPTH`, so a hostile body cannot make any later step recurse without bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, TypeVar, cast
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mj_mcp.endpoints import Endpoint
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
from mj_mcp.glossary import english
from mj_mcp.models import (
    CODE_BANNED_PROMPT,
    CODE_EXISTED_MODAL,
    CODE_FAILURE,
    CODE_IN_QUEUE,
    CODE_NOT_FOUND,
    CODE_QUEUE_REJECTED,
    CODE_SUCCESS,
    SubmitResult,
    Task,
)
from mj_mcp.upstreams import DEFAULT_UPSTREAM, PROFILES, Profile, Upstream, recognise

__all__ = [
    "ACCEPTED_CODES",
    "ACCOUNT_WORDS",
    "CODE_SATURATED",
    "MASK",
    "MASKED_KEY_MIN",
    "MAX_JSON_DEPTH",
    "MAX_REPLY_BYTES",
    "Reply",
    "Scrub",
    "cancel_result",
    "fingerprint",
    "gloss",
    "mask",
    "parse",
    "parse_list",
    "raise_for_http",
    "rejection",
    "retry_after",
    "scrubber",
    "secret_forms",
    "seed_of",
    "submit_failure",
    "submit_result",
    "task_of",
    "too_large",
    "transient_error",
]

Scrub = Callable[[str], str]

ACCEPTED_CODES: Final = frozenset({CODE_SUCCESS, CODE_IN_QUEUE, CODE_EXISTED_MODAL})
CODE_SATURATED: Final = 30
"""new-api: the user's group has no free capacity right now (a rate limit in all but name)."""
MAX_REPLY_BYTES: Final = 32 * 1024 * 1024
"""The most of a reply the client reads; more is `too_large`."""
MAX_JSON_DEPTH: Final = 32
"""Containers nested deeper than this in a reply are read as null (real replies nest 3 or 4 deep)."""
MASK: Final = "***"
"""What the key is replaced with wherever the upstream echoed it."""
MASKED_KEY_MIN: Final = 8
"""A shorter key is masked in messages only: masking every "x" inside task URLs would break them."""
ACCOUNT_WORDS: Final = ("账号", "account", "Account", "实例")
"""Words in a code-3 message that mean "no account can take this job", not "no such task"."""

PLUS: Final = PROFILES[DEFAULT_UPSTREAM]
_LIMITS: Final[dict[str, tuple[str, str]]] = {
    # trueai's per-user limits (code 4, or its second envelope): not a wrong argument.
    "并发数已达上限": ("rate", "Wait until one of the account's running jobs has finished, then submit again."),
    "队列数已达上限": ("queue", "Wait until the account's queued jobs have started, then submit again."),
    "今日绘图次数已达上限": ("rate", "The account's jobs for today are used up: try again tomorrow."),
}
"""Texts of a refusal that mean "try later", with what to tell the model."""
_KEY_WORDS: Final = ("header missing", "invalid", "无效", "未提供", "not provided", "incorrect")
"""Words in a 401/403 reason that blame the key itself (else the key was fine and something else was refused)."""
_GATEWAY_ERROR: Final = "new_api_error"

_UNREADABLE_SUBMIT_HINT: Final = (
    f"{SubmitOutcomeUnknownError.hint} If this keeps happening, check that MJ_BASE_URL points at a "
    "midjourney-proxy compatible API."
)
_NOT_JSON: Final = object()
_TaskList = TypeAdapter(list[Task])
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Reply:
    """One upstream answer, read whole. `headers` is case-insensitive when it comes from httpx2."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    path: str | None = None
    """The path that was requested (with any speed-mode prefix), when known."""
    redact: tuple[str, ...] = field(default=(), repr=False)
    """Spellings of the key (`secret_forms`) masked in every string parsed from the body."""

    @property
    def empty(self) -> bool:
        return not self.body.strip()


def secret_forms(secret: str | None) -> tuple[str, ...]:
    """The spellings of `secret` an upstream may echo: as is, URL-encoded, JSON-escaped; longest first.

    None for a key shorter than `MASKED_KEY_MIN` (a test key such as "x" guards nothing).
    """
    if not secret or len(secret) < MASKED_KEY_MIN:
        return ()
    forms = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return tuple(sorted(forms, key=len, reverse=True))


def mask(text: str, forms: tuple[str, ...]) -> str:
    """`text` with every spelling in `forms` replaced by `MASK`."""
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def scrubber(secret: str | None) -> Scrub:
    """Upstream text made safe for a message: trimmed, the key masked, at most 300 characters."""
    forms = secret_forms(secret) or ((secret,) if secret else ())

    def scrub(text: str) -> str:
        text = mask(text.strip(), forms)
        return text[:300] + ("…" if len(text) > 300 else "")

    return scrub


def gloss(text: str) -> str:
    """`text` in English with the original in parentheses, when the glossary knows it (else as it is)."""
    return english(text)


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; an offset-less one is read as such
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


# -- errors worth another attempt --------------------------------------------------------------


def transient_error(endpoint: Endpoint, reply: Reply) -> UpstreamError | None:
    """The error of a 429 or 5xx reply to a read (which may be tried again), else None."""
    if reply.status == 429:
        return RateLimitedError(
            "The upstream is rate limiting requests.", retry_after=retry_after(reply.headers.get("retry-after"))
        )
    if reply.status >= 500:
        return UpstreamUnavailableError(
            f"The upstream failed with HTTP {reply.status} on {endpoint.name}.", http_status=reply.status
        )
    return None


# -- any reply -------------------------------------------------------------------------------


def raise_for_http(endpoint: Endpoint, reply: Reply, scrub: Scrub, profile: Profile = PLUS) -> None:
    """Raise the error a (non-5xx, non-429) reply's status or body means; return if it is a success."""
    try:
        _raise_for_http(endpoint, reply, scrub)
    except UpstreamError as exc:
        raise _noted(exc, reply, profile) from None


def _raise_for_http(endpoint: Endpoint, reply: Reply, scrub: Scrub) -> None:
    status = reply.status
    if status < 300:
        if _is_web_page(reply):
            # new-api answers the routes it does not relay with its dashboard page, HTTP 200.
            raise _missing_route(endpoint, reply.path, web_page=True)
        return
    data = _json(reply) if not reply.empty else None
    if status in (401, 403):
        raise _refused(endpoint, reply, data, scrub)
    if status == 404 and _spring_error(data):
        # The original proxy's "no such route" (its missing task is a code-3 envelope instead).
        raise _missing_route(endpoint, reply.path)
    if isinstance(data, dict):
        envelope = _error_envelope(cast(dict[str, Any], data))
        if envelope is not None:
            code, text = envelope
            if "task_no_found" in text or "task_not_found" in text:
                code = CODE_NOT_FOUND
            raise rejection(endpoint, code, text, status, {}, scrub)
    if status == 404:
        if endpoint.task_in_path:
            raise TaskNotFoundError(f"{_task_not_found_text(endpoint)}.", http_status=404)
        raise _missing_route(endpoint, reply.path)
    text = reply.body.decode("utf-8", "replace") if not reply.empty else ""
    raise UpstreamRejectedError(
        f"The upstream rejected {endpoint.name} with HTTP {status}" + (f": {gloss(scrub(text))}" if text else "."),
        http_status=status,
    )


def rejection(
    endpoint: Endpoint,
    code: int | None,
    text: str,
    status: int,
    properties: Mapping[str, Any],
    scrub: Scrub,
) -> UpstreamError:
    """The error for an upstream's refusal with `code` (None when the dialect has no code)."""
    text = gloss(scrub(text)) or "no reason given"
    limit = next((v for needle, v in _LIMITS.items() if needle in text), None)
    if limit is not None:
        kind, hint = limit
        if kind == "queue":
            return QueueFullError(f"The upstream queue of this account is full: {text}", code=code, hint=hint)
        return RateLimitedError(f"The upstream's limit for this account is reached: {text}", code=code, hint=hint)
    if code == CODE_NOT_FOUND:
        return _not_found(endpoint, code, text, status)
    if code == CODE_BANNED_PROMPT:
        word = properties.get("bannedWord")
        word_text = f" (banned word: {word!r})" if isinstance(word, str) and word else ""
        return BannedPromptError(f"The upstream refused the prompt{word_text}: {text}", banned_word=word or None)
    full = "队列已满" in text or "queue full" in text.lower() or "queue is full" in text.lower()
    if code == CODE_QUEUE_REJECTED or (code == CODE_FAILURE and full):
        return QueueFullError(f"The upstream queue is full: {text}", code=code, http_status=status)
    if code == CODE_SATURATED:
        return RateLimitedError(f"The upstream is saturated: {text}", retry_after=None, code=code)
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


def _not_found(endpoint: Endpoint, code: int, text: str, status: int) -> UpstreamError:
    # Code 3 is also "no account can take this job" (无可用的账号实例, 账号不可用, no HD account
    # for an HD video); only a call that names a task can be missing one.
    if not endpoint.references_task or any(word in text for word in ACCOUNT_WORDS):
        return UpstreamRejectedError(
            f"The upstream has no account available for {endpoint.name}: {text}",
            code=code,
            http_status=status,
            hint="Nothing was started. Try again later, or with another mode (fast/relax/turbo); if it "
            "persists, the upstream's Midjourney accounts need attention.",
        )
    return TaskNotFoundError(f"{_task_not_found_text(endpoint)}: {text}", code=code, http_status=status)


# -- envelopes (submits, seed, cancel) --------------------------------------------------------


def submit_result(endpoint: Endpoint, reply: Reply, scrub: Scrub, profile: Profile = PLUS) -> SubmitResult:
    """The accepted envelope of a submit, or the error its reply means.

    A code 21 that the profile reads as "the task already exists" (and whose reply does not show
    a MODAL wait) comes back as accepted, naming the existing task, so that it is followed.
    """
    try:
        result = _submit_result(endpoint, reply, scrub)
    except UpstreamError as exc:
        raise _noted(exc, reply, profile) from None
    if result.code == CODE_EXISTED_MODAL and profile.code_21 == "task_exists" and _shows_existing(result):
        said = gloss(scrub(result.description))
        return result.model_copy(
            update={"code": CODE_SUCCESS, "description": f"The task already exists{f' ({said})' if said else ''}."}
        )
    return result


def submit_failure(endpoint: Endpoint, reply: Reply, scrub: Scrub, profile: Profile = PLUS) -> UpstreamError:
    """The error of a submit answered with a 5xx: its outcome is unknown, unless the body says it
    was refused before anything started (new-api's gateway: 503 "no channel for this model")."""
    data = _json(reply)
    error = cast(dict[str, Any], data).get("error") if isinstance(data, dict) else None
    status = reply.status
    if status == 503 and isinstance(error, dict) and error.get("type") == _GATEWAY_ERROR:  # pyright: ignore[reportUnknownMemberType]
        said = gloss(scrub(str(error.get("message") or ""))) or "no reason given"  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        refused = UpstreamRejectedError(
            f"The gateway refused {endpoint.name} before relaying it (HTTP {status}): {said}. Nothing was started.",
            http_status=status,
            hint="Nothing was started, so nothing is paid. The gateway has no channel for this operation: use "
            "another tool for the same result, or ask its administrator to enable it.",
        )
        return _noted(refused, reply, profile)
    unknown = SubmitOutcomeUnknownError(
        f"The upstream answered the {endpoint.name} request with HTTP {status}; it was not sent again.",
        http_status=status,
    )
    return _noted(unknown, reply, profile)


def _shows_existing(result: SubmitResult) -> bool:
    # The "exists" reply carries the existing task's status; the MODAL one carries finalPrompt/remix.
    status = result.properties.get("status")
    return isinstance(status, str) and bool(status) and status != "MODAL"


def _submit_result(endpoint: Endpoint, reply: Reply, scrub: Scrub) -> SubmitResult:
    if reply.status == 429:
        raise RateLimitedError(
            f"The upstream is rate limiting; the {endpoint.name} job was not accepted.",
            retry_after=retry_after(reply.headers.get("retry-after")),
        )
    _raise_for_http(endpoint, reply, scrub)
    try:
        result = _envelope(endpoint, reply, scrub)
    except ProtocolError as exc:
        # A 2xx whose body is unreadable may still mean the job was created and paid for.
        raise ProtocolError(exc.message, http_status=exc.http_status, hint=_UNREADABLE_SUBMIT_HINT) from None
    if result.code not in ACCEPTED_CODES:
        raise rejection(endpoint, result.code, result.description, 200, result.properties, scrub)
    if endpoint.creates_task and result.task_id is None:
        raise SubmitOutcomeUnknownError(
            f"The upstream accepted {endpoint.name} (code {result.code}) but returned no task id."
        )
    return result


def seed_of(endpoint: Endpoint, task_id: str, reply: Reply, scrub: Scrub) -> str:
    """The seed in an image-seed envelope."""
    result = _envelope(endpoint, reply, scrub)
    if result.code != CODE_SUCCESS or not isinstance(result.result, str) or not result.result:
        raise UpstreamRejectedError(
            f"No seed for task {task_id}: {gloss(scrub(result.description)) or 'the upstream gave none'}.",
            code=result.code,
            hint="Only finished image tasks have a seed; check the task with get_task.",
        )
    return result.result


def cancel_result(endpoint: Endpoint, reply: Reply, scrub: Scrub) -> SubmitResult | None:
    """A cancel's envelope when the upstream sends one (TA sends none), or the error it means."""
    if reply.empty:
        return None
    result = _envelope(endpoint, reply, scrub)
    if result.code not in ACCEPTED_CODES and result.code != 0:
        raise rejection(endpoint, result.code, result.description, 200, result.properties, scrub)
    return result


def _envelope(endpoint: Endpoint, reply: Reply, scrub: Scrub) -> SubmitResult:
    raw = _json(reply)
    if not isinstance(raw, dict):
        raise ProtocolError(f"The upstream's reply to {endpoint.name} is not a JSON object.", http_status=reply.status)
    data = cast(dict[str, Any], raw)
    if data.get("success") is False and "code" in data:
        # TA's second envelope: {"success": false, "code": -1, "message": ...} with HTTP 200.
        raise rejection(endpoint, None, str(data.get("message") or ""), reply.status, {}, scrub)
    try:
        return SubmitResult.model_validate(data)
    except (PydanticValidationError, RecursionError):
        raise ProtocolError(
            f"The upstream's reply to {endpoint.name} has no valid code.", http_status=reply.status
        ) from None


def _error_envelope(data: dict[str, Any]) -> tuple[int | None, str] | None:
    """(code, text) of the error bodies the dialects use, or None if not one of them."""
    if isinstance(data.get("code"), int) and ("description" in data or "message" in data):
        text = data.get("description") or data.get("message") or ""
        return int(data["code"]), str(text)
    if _spring_error(data):
        return None, f"{data.get('error')}: the request body was not accepted"
    error = data.get("error")
    if isinstance(error, dict):  # new-api's own auth/quota errors
        return None, str(error.get("message", ""))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    return None


# -- tasks -----------------------------------------------------------------------------------


def task_of(task_id: str, reply: Reply) -> Task:
    """The task of a fetch; TaskNotFoundError for the empty answer some upstreams give instead."""
    if reply.status == 204 or reply.empty:
        raise TaskNotFoundError(f"Task {task_id} was not found.", http_status=reply.status)
    return parse(reply, Task, "a task")


def parse(reply: Reply, model: type[_M], what: str) -> _M:
    """The reply's JSON as `model`; ProtocolError naming `what` was expected if it is not one."""
    data = _json(reply)
    try:
        return model.model_validate(data)
    except (PydanticValidationError, RecursionError):
        raise ProtocolError(f"The upstream sent something that is not {what}.", http_status=reply.status) from None


def parse_list(reply: Reply) -> list[Task]:
    """A list of tasks, bare or paged (`{"content": [...]}`)."""
    data = _json(reply)
    if isinstance(data, dict):
        # Some deployments page their lists.
        data = cast(dict[str, Any], data).get("content", data)
    try:
        return _TaskList.validate_python(data)
    except (PydanticValidationError, RecursionError):
        raise ProtocolError(
            "The upstream sent something that is not a list of tasks.", http_status=reply.status
        ) from None


# -- helpers ---------------------------------------------------------------------------------


def too_large(endpoint: Endpoint, status: int) -> ProtocolError:
    """A reply longer than `MAX_REPLY_BYTES` (the client stops reading there)."""
    # A paid job's reply came after the request arrived: the job may exist all the same.
    return ProtocolError(
        "The upstream reply is too large.", http_status=status, hint=_UNREADABLE_SUBMIT_HINT if endpoint.paid else None
    )


def _json(reply: Reply) -> Any:
    """The body as JSON, cut at `MAX_JSON_DEPTH` with the key masked; `_NOT_JSON` if it is none."""
    try:
        return _clean(json.loads(reply.body), reply.redact, 0)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return _NOT_JSON


def _clean(value: Any, forms: tuple[str, ...], depth: int) -> Any:
    # Recursion stops at MAX_JSON_DEPTH, whatever the body's own depth.
    if isinstance(value, str):
        return mask(value, forms)
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            return None
        items = cast(dict[str, Any], value).items()
        return {mask(key, forms): _clean(item, forms, depth + 1) for key, item in items}
    if isinstance(value, list):
        if depth >= MAX_JSON_DEPTH:
            return None
        return [_clean(item, forms, depth + 1) for item in cast(list[Any], value)]
    return value


def fingerprint(reply: Reply) -> Upstream | None:
    """The upstream program whose signature the reply bears, if it bears one (`Profile.fingerprint`)."""
    return recognise(reply.status, _json(reply), web_page=reply.status < 300 and _is_web_page(reply))


def _noted(error: UpstreamError, reply: Reply, profile: Profile) -> UpstreamError:
    """`error`, saying which MJ_UPSTREAM fits when the reply shows another program than `profile`."""
    other = fingerprint(reply)
    if other is not None and other != profile.name:
        fits = PROFILES[other]
        error.message = f"{error.message} This looks like {fits.title}: set {fits.setting}."
    return error


def _refused(endpoint: Endpoint, reply: Reply, data: Any, scrub: Scrub) -> AuthenticationError:
    """HTTP 401/403 with the upstream's own reason when it gave one (a token limited to other
    models, a disabled account): only some reasons mean the key is wrong."""
    status = reply.status
    reason = ""
    if isinstance(data, dict):
        found = _error_envelope(cast(dict[str, Any], data))
        reason = found[1] if found is not None else ""
    elif not reply.empty and not _is_web_page(reply):
        reason = reply.body.decode("utf-8", "replace")
    reason = gloss(scrub(reason))
    what = "the key" if status == 401 else f"{endpoint.name}"
    if not reason:
        return AuthenticationError(f"The upstream refused {what} (HTTP {status}).", http_status=status)
    if status == 401 or any(word in reason.casefold() for word in _KEY_WORDS):
        return AuthenticationError(f"The upstream refused {what} (HTTP {status}): {reason}", http_status=status)
    return AuthenticationError(
        f"The upstream refused {what} (HTTP {status}): {reason}",
        http_status=status,
        hint="The key was read, but the upstream does not allow this for its account or token, for the "
        "reason it gave. Nothing was started. Use another tool, or ask the upstream's operator to allow it.",
    )


def _spring_error(data: Any) -> bool:
    """Spring Boot's error JSON (the original proxy): `{"timestamp","status","error","path"}`."""
    return isinstance(data, dict) and "error" in data and isinstance(cast(dict[str, Any], data).get("status"), int)


def _is_web_page(reply: Reply) -> bool:
    if "html" in reply.headers.get("content-type", "").lower():
        return True
    return reply.body[:64].lstrip().lower().startswith((b"<!doctype html", b"<html"))


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
            # The other path style is no cure: new-api drops '/mj-{mode}' silently.
            hint="Call again without mode, or ask the user to set MJ_UPSTREAM to the software that runs "
            "there, or MJ_MODE_PREFIX=prompt (a --fast/--relax/--turbo prompt parameter, which Midjourney "
            "itself honours), or to clear MJ_MODE.",
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
        f"This upstream does not offer {endpoint.name} ({endpoint.path} {answered}).", http_status=404, hint=hint
    )


def _task_not_found_text(endpoint: Endpoint) -> str:
    if endpoint.paid:
        return "The task this refers to was not found"
    return "The task was not found"
