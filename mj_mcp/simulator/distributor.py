"""new-api's `Distribute` middleware: which model a Midjourney submit is, and whether the token
and a channel may serve it, before new-api's controller sees the request.

Read from middleware/distributor.go, service/midjourney.go (`GetMjRequestModel`,
`CoverPlusActionToNormalAction`) and relay/constant/relay_mode.go: simple-change is routed as a
change whose `action` is empty, so its model is `mj_` and no channel serves it. Refusals are
`abortWithOpenAiMessage`: `{"error":{"message":"… (request id: …)","type":"new_api_error"}}`
with HTTP 400 (a request it cannot map), 403 (a model the token may not use) or 503 (no channel).
"""

from __future__ import annotations

from typing import Final

from starlette.responses import Response

from mj_mcp.simulator.auth import na_gateway_error
from mj_mcp.simulator.quirks import Quirks
from mj_mcp.simulator.wire import Answer

__all__ = ["GROUP", "Refusal", "action_of_button", "distribute", "model_of"]

GROUP: Final = "default"
"""The user group new-api names in its no-channel message."""
_NO_CHANNEL: Final = frozenset({"mj_"})
"""Models no channel can serve: an empty action (simple-change, a change without `action`)."""


class Refusal(Exception):
    """`GetMjRequestModel` could not map the request: its reason (`unknown_action:…`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def action_of_button(custom_id: str) -> str:
    """new-api's `CoverPlusActionToNormalAction`: its action name for a button, or `Refusal`."""
    if not custom_id:
        raise Refusal("custom_id_is_required")
    parts = custom_id.split("::")
    if len(parts) < 2 or (parts[1] == "JOB" and len(parts) < 3):
        raise Answer(Response(status_code=500))  # Go: index out of range; gin's recovery
    word = parts[2] if parts[1] == "JOB" else parts[1]
    if not word:
        raise Refusal("unknown_action")
    if "upsample" in word or word == "variation":
        if len(parts) < 4:
            raise Answer(Response(status_code=500))
        try:
            int(parts[3])
        except ValueError:
            raise Refusal("index_parse_failed") from None
        return "UPSCALE" if "upsample" in word else "VARIATION"
    if "variation" in word:
        return {"low_variation": "LOW_VARIATION", "high_variation": "HIGH_VARIATION"}.get(word, "")
    if "pan" in word:
        return "PAN"
    if "reroll" in word:
        return "REROLL"
    named = {"Outpaint": "ZOOM", "CustomZoom": "CUSTOM_ZOOM", "Inpaint": "INPAINT"}.get(word)
    if named is None:
        raise Refusal(f"unknown_action:{custom_id}")
    return named


def model_of(action: str) -> str:
    """The model new-api bills and routes an action as (`CovertMjpActionToModelName`)."""
    return "swap_face" if action == "SWAP_FACE" else "mj_" + action.lower()


def distribute(model: str, quirks: Quirks, now: float) -> None:
    """The token's model limit (403), then a channel for the model (503); passes otherwise."""
    if model in quirks.na_forbidden_models:
        raise Answer(na_gateway_error(403, f"该令牌无权访问模型 {model}", now))
    if model in _NO_CHANNEL or model in quirks.na_no_channel:
        raise Answer(na_gateway_error(503, f"当前分组 {GROUP} 下对于模型 {model} 无可用渠道", now))


def refused(refusal: Refusal, now: float) -> Answer:
    """The distributor's 400 for a request `GetMjRequestModel` could not map."""
    return Answer(na_gateway_error(400, f"Invalid request, {refusal.reason}", now))
