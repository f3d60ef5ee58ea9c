"""The authentication dialects (`Quirks.auth`): which headers carry the key, and how a refusal looks.

NZ reads `mj-api-secret` only; TA the raw `Authorization` value (no "Bearer " stripping) when
that header is sent, else `mj-api-secret`; new-api's TokenAuth `Authorization: Bearer sk-…`;
"any" accepts every style. Each fails in its own form (docs/upstream-api.md §1.1).

With per-key tenancy (`Simulator(per_key=True)`) every request must present a key, any key is
accepted (unless `api_key` names the one), and the key presented (`presented`, as the dialect
reads it) decides whose tasks the request sees: as on a real upstream, one key never reads,
presses or cancels another key's task.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from mj_mcp.clock import Clock
from mj_mcp.simulator.quirks import Quirks

__all__ = ["Auth", "na_gateway_error"]

MSG_TA_UNAUTHORIZED: Final = "Authorization header missing."
NA_INVALID_TOKEN: Final = "无效的令牌"  # noqa: S105 - the message, not a secret
_TA_ACCOUNT: Final = {
    "disabled": (401, "账号已禁用"),
    "unavailable": (403, "账号不可用"),
    "no_permission": (401, "账号无权限"),
}
"""TA's refusals for a matching key whose account may not work (the upstream audit of issue 13 B5)."""


class Auth:
    """The key check of whichever server the client talks to; no key lets everybody in."""

    def __init__(self, *, api_key: str | None, quirks: Quirks, clock: Clock, per_key: bool = False) -> None:
        self.api_key = api_key or None
        self._quirks = quirks
        self._clock = clock
        self.per_key = per_key

    def presented(self, headers: Headers) -> str | None:
        """The key the request presents, as this dialect reads it (None: none)."""
        dialect = self._quirks.auth
        if dialect == "nz":
            key = headers.get("mj-api-secret", "")
        elif dialect == "ta":
            key = headers["authorization"] if "authorization" in headers else headers.get("mj-api-secret", "")
        elif dialect == "new-api":
            key = _new_api_token(headers)
        else:
            key = _strip_bearer(headers.get("authorization", "").strip()) or headers.get("mj-api-secret", "")
        return key.strip() or None

    def admits(self, headers: Headers) -> bool:
        if self.per_key and self.presented(headers) is None:
            return False
        if self.api_key is None:
            return True
        dialect = self._quirks.auth
        if dialect == "nz":
            return _same(headers.get("mj-api-secret", ""), self.api_key)
        if dialect == "ta":
            # TA's WorkContext: Authorization when the header is there at all, raw.
            token = headers["authorization"] if "authorization" in headers else headers.get("mj-api-secret", "")
            return _same(token, self.api_key)
        if dialect == "new-api":
            return _same(_new_api_token(headers), self.api_key.removeprefix("sk-"))
        authorization = headers.get("authorization", "").strip()
        candidates = {authorization, headers.get("mj-api-secret", "").strip()}
        if authorization[:7].lower() == "bearer ":
            candidates.add(authorization[7:].strip())
        return any(_same(c, self.api_key) for c in candidates)

    def account_refusal(self) -> Response | None:
        """TA's answer when the key matched but its account may not submit (`Quirks.account_refusal`)."""
        reason = self._quirks.account_refusal
        if reason is None:
            return None
        status, message = _TA_ACCOUNT[reason]
        return Response(message, status, media_type="text/plain")

    def refusal(self) -> Response:
        """The 401 of the dialect."""
        dialect = self._quirks.auth
        if dialect == "ta" or (dialect == "any" and self._quirks.auth_plain_text):
            return Response(MSG_TA_UNAUTHORIZED, 401, media_type="text/plain")
        if dialect == "new-api":
            return na_gateway_error(401, NA_INVALID_TOKEN, self._clock.now())
        return Response(status_code=401)


def na_gateway_error(status: int, message: str, now: float) -> Response:
    """new-api's own refusal in its middleware (`abortWithOpenAiMessage`): the message with a
    request id, under `error`, typed `new_api_error`."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%d%H%M%S")
    body = {"message": f"{message} (request id: {stamp}{secrets.token_hex(4)})", "type": "new_api_error", "code": ""}
    return JSONResponse({"error": body}, status)


def _new_api_token(headers: Headers) -> str:
    """new-api's TokenAuth: its keys are "sk-" + the token; a further "-…" picks a channel."""
    key = _strip_bearer(headers.get("authorization", ""))
    if key in ("", "midjourney-proxy"):
        key = _strip_bearer(headers.get("mj-api-secret", ""))
    return key.removeprefix("sk-").split("-")[0]


def _same(presented: str, key: str) -> bool:
    return bool(presented) and secrets.compare_digest(presented.encode(), key.encode())


def _strip_bearer(value: str) -> str:
    """new-api strips exactly "Bearer " or "bearer " (then spaces), nothing else."""
    return value[7:].strip() if value.startswith(("Bearer ", "bearer ")) else value
