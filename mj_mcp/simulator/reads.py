"""The TA / PLUS read handlers (fetch, lists, the paged query, image seed) and cancel."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from starlette.responses import JSONResponse, Response

from mj_mcp.models import CODE_NOT_FOUND, CODE_SUCCESS, CODE_VALIDATION, ConditionRequest
from mj_mcp.querymodels import QueryRequest
from mj_mcp.simulator.core import UNFINISHED, SimTask
from mj_mcp.simulator.handlers import Handlers
from mj_mcp.simulator.prompts import digest
from mj_mcp.simulator.views import full_view, upstream_view
from mj_mcp.simulator.wire import MSG_BAD_STATUS, MSG_NOT_FOUND, Call, envelope, read_body, task_missing, validate

__all__ = ["Reads"]

MAX_TASKS_LISTED: Final = 100


class Reads(Handlers):
    """`/mj/task/...`: what the upstream shows of its tasks, and cancelling one."""

    def view(self, task: SimTask) -> dict[str, Any]:
        """The task as the upstream shows it now."""
        return upstream_view(task, self.store.snapshot(task), self.profile, official_cdn=self.quirks.official_cdn)

    async def fetch(self, call: Call) -> Response:
        task = self.store.get(call.params["id"])
        if task is not None:
            return JSONResponse(self.view(task))
        if self.quirks.unknown_fetch == "empty200":
            return Response(b"", 200)
        if self.quirks.unknown_fetch == "400":
            body = {"description": "task_no_found ", "type": "upstream_error", "code": CODE_VALIDATION}
            return JSONResponse(body, status_code=400)
        return Response(status_code=204)

    async def list_by_condition(self, call: Call) -> Response:
        raw = await read_body(call, ConditionRequest)
        if not raw.get("ids"):
            return JSONResponse([])
        req = validate(call, ConditionRequest, raw, submit=False)
        wanted = dict.fromkeys(i.strip() for i in req.ids)
        owner = self.store.owner()
        if owner is not None:
            self.store.list_log.append((owner, list(wanted)))
        found = [self.store.get(i) for i in wanted]
        return JSONResponse([self.view(task) for task in found if task is not None])

    async def recent(self, _call: Call) -> Response:
        return JSONResponse([self.view(t) for t in reversed(self.store.ordered())][:MAX_TASKS_LISTED])

    async def queue(self, _call: Call) -> Response:
        return JSONResponse([self.view(t) for t in self.store.ordered() if self.store.snapshot(t).status in UNFINISHED])

    async def query(self, call: Call) -> Response:
        raw = await read_body(call, QueryRequest, required=False)
        req = validate(call, QueryRequest, raw, submit=False)
        rows = [(t, full_view(t, self.store.snapshot(t))) for t in self.store.visible()]
        rows = [(t, v) for t, v in rows if _query_matches(req, v)]
        # Spring sorts only when asked (the model's default says what mj-mcp sends, not the upstream's).
        asked = req.sort if "sort" in req.model_fields_set else None
        sorted_by = asked is not None
        if asked is not None:
            name, direction = asked.split(",")
            rows.sort(key=lambda row: _sort_key(row[1].get(name)), reverse=direction == "desc")
        total = len(rows)
        offset = req.page_number * req.page_size
        content = [self.view(t) for t, _ in rows[offset : offset + req.page_size]]
        pages = math.ceil(total / req.page_size)
        sort = {"empty": not sorted_by, "sorted": sorted_by, "unsorted": not sorted_by}
        page = {
            "content": content,
            "pageable": {
                "sort": sort,
                "offset": offset,
                "pageNumber": req.page_number,
                "pageSize": req.page_size,
                "paged": True,
                "unpaged": False,
            },
            "last": req.page_number >= pages - 1,
            "totalPages": pages,
            "totalElements": total,
            "size": req.page_size,
            "number": req.page_number,
            "sort": sort,
            "first": req.page_number == 0,
            "numberOfElements": len(content),
            "empty": not content,
        }
        return JSONResponse(page)

    async def image_seed(self, call: Call) -> Response:
        task = self.store.get(call.params["id"])
        if task is None:
            task_missing()
        if self.store.snapshot(task).status != "SUCCESS":
            return envelope(CODE_VALIDATION, MSG_BAD_STATUS, status=400)
        seed = int.from_bytes(digest(task.job_hash)[:4], "big")
        return envelope(CODE_SUCCESS, "成功", str(seed))

    async def cancel(self, call: Call) -> Response:
        task_id = call.params["id"]
        task = self.store.get(task_id)
        cancelled = False
        if task is not None and self.store.snapshot(task).status in (*UNFINISHED, "MODAL"):
            task.cancelled_at = self.store.clock.now()
            cancelled = True
        if self.quirks.cancel_empty_body:
            return Response(b"", 200)
        if task is None:
            return envelope(CODE_NOT_FOUND, MSG_NOT_FOUND)
        if not cancelled:
            return envelope(CODE_VALIDATION, MSG_BAD_STATUS)
        return JSONResponse({"code": CODE_SUCCESS, "description": "success", "result": self.result_id(task_id)})


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def _query_matches(req: QueryRequest, view: Mapping[str, Any]) -> bool:
    """The PLUS paged-query filters: exact for ids/enums/state/instance, substring for texts."""
    checks: list[bool] = [
        req.id is None or view["id"] == req.id,
        req.ids is None or view["id"] in req.ids,
        req.action is None or view["action"] == req.action,
        req.status is None or view["status"] == req.status,
        req.status_set is None or view["status"] in req.status_set,
        req.state is None or view["state"] == req.state,
        req.instance_id is None or view["properties"].get("discordInstanceId") == req.instance_id,
    ]
    for wanted, name in (
        (req.prompt, "prompt"),
        (req.prompt_en, "promptEn"),
        (req.description, "description"),
        (req.fail_reason, "failReason"),
    ):
        checks.append(wanted is None or wanted in (view[name] or ""))
    return all(checks)
