"""One error tree for everything mj-mcp can report.

```
MjError                      every error carries `message` and `hint` (what to do next)
├── SettingsError            a setting is missing or wrong; the CLI prints it and exits 2
├── InputError               a tool argument the model can fix
│   ├── ButtonNotFoundError  a customId/label that is not on the parent task
│   └── ImageInputError      an image argument that could not be used
│       └── ImageRejectedError   refused on purpose: outside MJ_ALLOWED_DIRS, internal URL, not an image, too big
├── GuardrailError           MJ_READ_ONLY / MJ_MAX_JOBS said no; nothing was sent
└── UpstreamError            the upstream answered with a failure, or did not answer
    ├── AuthenticationError  HTTP 401/403: the key or the header style is wrong
    ├── TaskNotFoundError    code 3, HTTP 404, or an empty fetch: no such task
    ├── UpstreamRejectedError    code 4 and other non-success codes: the request was refused
    │   └── BannedPromptError    code 24: the prompt contains a banned word
    ├── QueueFullError       code 23, or code 9 with a full queue: try again later
    ├── RateLimitedError     HTTP 429 (with `retry_after` when the upstream said), or new-api's
    │                        code 30 (the group is saturated; `code` is kept)
    ├── UpstreamUnavailableError  5xx, timeouts and transport failures
    │   ├── UpstreamTimeoutError       no whole answer within MJ_HTTP_TIMEOUT or the caller's deadline
    │   └── SubmitOutcomeUnknownError  a submit may have reached the upstream; it is not re-sent
    └── ProtocolError        a reply that cannot be understood (not JSON, wrong shape)
```

Messages never contain the API key, and never a traceback: they are written for the model
that called the tool and for the person reading the log.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

__all__ = [
    "AuthenticationError",
    "BannedPromptError",
    "ButtonNotFoundError",
    "GuardrailError",
    "ImageInputError",
    "ImageRejectedError",
    "InputError",
    "MjError",
    "ProtocolError",
    "QueueFullError",
    "RateLimitedError",
    "SettingsError",
    "SubmitOutcomeUnknownError",
    "TaskNotFoundError",
    "UpstreamError",
    "UpstreamRejectedError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "validation_problems",
]


class MjError(Exception):
    """Base of every error mj-mcp raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class SettingsError(MjError):
    """A setting (environment variable or CLI flag) is missing or invalid."""


class InputError(MjError):
    """A tool argument is wrong in a way the caller can fix."""

    hint = "Fix the argument and call the tool again."


class ButtonNotFoundError(InputError):
    """The requested button is not among the parent task's buttons."""

    def __init__(self, message: str, *, available: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.available = available


class ImageInputError(InputError):
    """An image argument could not be read or decoded."""

    hint = "Pass a data URI, raw base64, an http(s) URL, or a path to an image file."


class ImageRejectedError(ImageInputError):
    """An image argument was refused by a guard (allowed folders, internal address, size, type)."""


class GuardrailError(MjError):
    """A spending guard-rail refused the call before anything was sent upstream."""


class UpstreamError(MjError):
    """The upstream answered with a failure, or could not be reached."""

    hint = "Try again in a moment."

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        code: int | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.http_status = http_status


class AuthenticationError(UpstreamError):
    """HTTP 401/403: the key was refused."""

    hint = (
        "Check MJ_API_KEY, and MJ_AUTH_HEADER (bearer for resellers such as openai-hk; mj-api-secret "
        "for a self-hosted midjourney-proxy; authorization, the raw key, also works for trueai-org's), "
        "then restart the server."
    )


class TaskNotFoundError(UpstreamError):
    """No task with that id (or the referenced parent task is gone)."""

    hint = "Check the task id; recent_tasks lists the latest tasks."


class UpstreamRejectedError(UpstreamError):
    """The upstream refused the request (code 4 or another non-success code)."""

    hint = "Change the arguments as the message says and call again."


class BannedPromptError(UpstreamRejectedError):
    """Code 24: the prompt contains a word the upstream bans."""

    hint = "Rephrase the prompt without the banned word and submit again."

    def __init__(self, message: str, *, banned_word: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, code=24)
        self.banned_word = banned_word


class QueueFullError(UpstreamError):
    """The upstream queue is full; the job was not accepted."""

    hint = "The job was not accepted. Wait a minute and submit again; task_queue shows the queue."


class RateLimitedError(UpstreamError):
    """HTTP 429: too many requests (or new-api's code 30, which means the same)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        hint: str | None = None,
        code: int | None = None,
    ) -> None:
        if hint is None:
            wait = f"{retry_after:g} seconds" if retry_after is not None else "a little while"
            hint = f"Wait {wait} and try again."
        super().__init__(message, hint=hint, code=code, http_status=429)
        self.retry_after = retry_after


class UpstreamUnavailableError(UpstreamError):
    """5xx, timeout or a transport failure."""


class UpstreamTimeoutError(UpstreamUnavailableError):
    """A read or download did not finish within its time: MJ_HTTP_TIMEOUT or the caller's deadline."""


class SubmitOutcomeUnknownError(UpstreamUnavailableError):
    """A submit may or may not have reached the upstream; it was deliberately not re-sent."""

    hint = (
        "The job may have been created. Call recent_tasks and look for it before submitting "
        "again, so that it is not paid for twice."
    )


class ProtocolError(UpstreamError):
    """The upstream's reply could not be understood."""

    hint = "Check that MJ_BASE_URL points at a midjourney-proxy compatible API."


def validation_problems(
    exc: ValidationError,
    *,
    whole: str,
    limit: int = 8,
    name: Callable[[str], str] = str,
) -> str:
    """`loc: msg; loc: msg …` for the first `limit` problems of a pydantic error: one readable line.

    `whole` names a problem of the input as a whole (no location; "" shows the message alone);
    `name` turns the first part of a location into the name the reader knows (a setting's MJ_*
    variable, say).
    """
    problems: list[str] = []
    for err in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(part) for part in err.get("loc", ())]
        where = ".".join([name(loc[0]), *loc[1:]]) if loc else whole
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        problems.append(f"{where}: {msg}" if where else msg)
    return "; ".join(problems[:limit]) + ("; …" if len(problems) > limit else "")
