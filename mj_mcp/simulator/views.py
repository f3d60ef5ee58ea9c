"""The TA / PLUS Task JSON: how the upstream shows a task at one moment.

Every field is present, null when unset. Links are absolute, built on the base URL of the
request that created the task, so they work in-process (`http://sim/...`) and standalone alike.
"""

from __future__ import annotations

from typing import Any, Final

from mj_mcp.simulator.buttons import KINDS, buttons_of
from mj_mcp.simulator.core import SimTask, Snap
from mj_mcp.simulator.profiles import Profile

__all__ = ["INSTANCE_ID", "full_view", "picture_path", "upstream_view"]

INSTANCE_ID: Final = "1372468820912115716"
"""The simulated Discord account (properties.discordInstanceId / discordChannelId)."""


def picture_path(task: SimTask, snap: Snap) -> str | None:
    """The task's imageUrl now, relative to the simulator (or an external URL)."""
    spec = KINDS[task.kind]
    if spec.describes:
        return task.source_url
    if not spec.picture:
        return None
    if snap.status == "IN_PROGRESS":
        return f"/sim/images/{task.id}/preview.webp"
    if snap.status != "SUCCESS":
        return None
    if spec.video and task.source_url:
        return task.source_url
    return f"/sim/images/{task.id}.png"


_NZ_FIELDS: Final = (
    "id",
    "action",
    "status",
    "prompt",
    "promptEn",
    "description",
    "state",
    "submitTime",
    "startTime",
    "finishTime",
    "imageUrl",
    "progress",
    "failReason",
    "properties",
)
"""NZ's Task (Jackson-serialised): no buttons, no TA extras (the upstream audit of issue 13 E)."""


def upstream_view(task: SimTask, snap: Snap, profile: Profile, *, official_cdn: bool = False) -> dict[str, Any]:
    """The Task JSON of the profile's upstream (fetch, lists, callbacks): TA's full view, its
    `mode` the effective one where the upstream shows that, or NZ's field set (`official_cdn`:
    `Quirks.official_cdn`)."""
    view = full_view(task, snap)
    if official_cdn and task.action == "VIDEO" and view["videoUrls"]:
        view["imageUrl"] = view["videoUrl"]
        view["imageUrls"] = [{**v} for v in view["videoUrls"]]
    if profile.shows_effective_mode:
        view["mode"] = task.effective_mode
    if not profile.buttons:
        return {key: view[key] for key in _NZ_FIELDS}
    return view


def _absolute(task: SimTask, path: str | None) -> str | None:
    if path is None or not path.startswith("/"):
        return path
    return task.base + path


def full_view(task: SimTask, snap: Snap) -> dict[str, Any]:
    """TA / PLUS Task JSON: every field present, null when unset."""
    spec = KINDS[task.kind]
    success = snap.status == "SUCCESS"
    properties: dict[str, Any] = {"discordInstanceId": INSTANCE_ID, "discordChannelId": INSTANCE_ID}
    if task.notify_hook:
        properties["notifyHook"] = task.notify_hook
    properties.update(task.extra)
    if spec.text_result:
        if success:
            properties["finalPrompt"] = task.result_text
    elif task.final_prompt is not None and snap.status in ("MODAL", "IN_PROGRESS", "SUCCESS"):
        properties["finalPrompt"] = task.final_prompt
    if task.queued_at is None and snap.status == "MODAL":
        properties["remix"] = True
    if success:
        properties["messageHash"] = task.job_hash
    prompt = task.result_text if spec.describes and success else task.prompt
    image_urls: list[dict[str, str]] | None = None
    video_url: str | None = None
    video_urls: list[dict[str, str]] | None = None
    if success and spec.image_urls:
        image_urls = [{"url": f"{task.base}/sim/images/{task.id}/{n}.png"} for n in range(1, 5)]
    if success and spec.video:
        count = 1 if task.kind == "video_upscale" else 4
        video_urls = [
            {
                "url": f"{task.base}/sim/videos/{task.id}/{i}.mp4",
                "thumbnail": f"{task.base}/sim/images/{task.id}/{i + 1}.png",
            }
            for i in range(count)
        ]
        video_url = video_urls[0]["url"]
    has_size = success and spec.picture
    return {
        "id": task.id,
        "action": task.action,
        "status": snap.status,
        "prompt": prompt,
        "promptEn": prompt,
        "description": task.description,
        "state": task.state,
        "submitTime": task.submit_ms,
        "startTime": snap.start_ms,
        "finishTime": snap.finish_ms,
        "imageUrl": _absolute(task, picture_path(task, snap)),
        "imageUrls": image_urls,
        "videoUrl": video_url,
        "videoUrls": video_urls,
        "progress": snap.progress,
        "failReason": snap.fail_reason,
        "properties": properties,
        "buttons": buttons_of(task) if success else [],
        "mode": task.mode,
        "botType": task.bot_type,
        "parentId": task.parent_id,
        "imageWidth": task.size[0] if has_size else None,
        "imageHeight": task.size[1] if has_size else None,
        "baseImageUrl": task.source_url if spec.base_image else None,
    }
