"""Every reply dialect → one error (or model), one row each, with no client and no connection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mj_mcp.endpoints import ENDPOINTS, Endpoint
from mj_mcp.errors import (
    AuthenticationError,
    BannedPromptError,
    MjError,
    ProtocolError,
    QueueFullError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    TaskNotFoundError,
    UpstreamRejectedError,
    UpstreamUnavailableError,
)
from mj_mcp.replies import (
    Reply,
    cancel_result,
    gloss,
    parse_list,
    raise_for_http,
    retry_after,
    scrubber,
    seed_of,
    submit_result,
    task_of,
    too_large,
    transient_error,
)

KEY = "sk-secret-key"
SCRUB = scrubber(KEY)
IMAGINE = ENDPOINTS["imagine"]
ACTION = ENDPOINTS["action"]
FETCH = ENDPOINTS["get_task"]
LIST = ENDPOINTS["list_tasks"]


def body(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


# endpoint, reply, error class, code, message fragment, hint fragment
ROWS: list[tuple[str, Endpoint, Reply, type[MjError], int | None, str, str]] = [
    ("nz-accepted-no-id", IMAGINE, Reply(200, body({"code": 1, "description": "ok"})), SubmitOutcomeUnknownError, None,
     "returned no task id", "recent_tasks"),
    ("nz-banned", IMAGINE, Reply(200, body({"code": 24, "description": "可能包含敏感词", "properties":
     {"bannedWord": "gore"}})), BannedPromptError, 24, "banned word: 'gore'", "Rephrase"),
    ("nz-validation", IMAGINE, Reply(200, body({"code": 4, "description": "prompt不能为空"})), UpstreamRejectedError,
     4, "the prompt is empty", "Change the arguments"),
    ("nz-queue-rejected", IMAGINE, Reply(200, body({"code": 23, "description": "队列已满"})), QueueFullError, 23,
     "queue is full", "Wait a minute"),
    ("nz-failure-queue-full", IMAGINE, Reply(200, body({"code": 9, "description": "queue is full"})),
     QueueFullError, 9, "queue is full", "Wait a minute"),
    ("nz-failure", IMAGINE, Reply(200, body({"code": 9, "description": "系统异常"})), UpstreamRejectedError, 9,
     "failed to accept imagine", "Try again in a minute"),
    ("nz-no-account", IMAGINE, Reply(200, body({"code": 3, "description": "无可用的账号实例"})),
     UpstreamRejectedError, 3, "no account available for imagine", "Nothing was started"),
    ("nz-missing-parent", ACTION, Reply(200, body({"code": 3, "description": "关联任务不存在或已失效"})),
     TaskNotFoundError, 3, "The task this refers to was not found", "recent_tasks"),
    ("nz-account-on-action", ACTION, Reply(200, body({"code": 3, "description": "账号不可用"})),
     UpstreamRejectedError, 3, "no account available for action", "another mode"),
    ("nz-other-code", IMAGINE, Reply(200, body({"code": 77, "description": "odd"})), UpstreamRejectedError, 77,
     "rejected imagine (code 77): odd", "Change the arguments"),
    ("new-api-saturated", IMAGINE, Reply(200, body({"code": 30, "description": "saturated"})), RateLimitedError, 30,
     "saturated", "a little while"),
    ("new-api-error", IMAGINE, Reply(400, body({"error": {"message": "quota_not_enough"}})), UpstreamRejectedError,
     None, "the account's quota is used up", "Change the arguments"),
    ("new-api-code-4", IMAGINE, Reply(400, body({"description": "quota_not_enough ", "type": "x", "code": 4})),
     UpstreamRejectedError, 4, "quota is used up", "Change the arguments"),
    ("new-api-web-page", LIST, Reply(200, b"<!doctype html><html></html>", {"content-type": "text/html"}),
     UpstreamRejectedError, None, "answered with a web page", "Gateways such as new-api"),
    ("ta-second-envelope", IMAGINE, Reply(200, body({"success": False, "code": -1, "message": "参数错误"})),
     UpstreamRejectedError, None, "a parameter is wrong (参数错误)", "Change the arguments"),
    ("ta-concurrency-limit", IMAGINE, Reply(200, body({"success": False, "code": -1, "message": "并发数已达上限"})),
     RateLimitedError, None, "(并发数已达上限)", "running jobs has finished"),
    ("spring-error", IMAGINE, Reply(400, body({"status": 400, "error": "Bad Request"})), UpstreamRejectedError, None,
     "Bad Request: the request body was not accepted", "Change the arguments"),
    ("auth-401", IMAGINE, Reply(401, b"nope"), AuthenticationError, None, "refused the key (HTTP 401)",
     "MJ_AUTH_HEADER"),
    ("auth-403-reason", IMAGINE, Reply(403, "账号不可用".encode()), AuthenticationError, None,
     "HTTP 403): the account is unavailable (账号不可用)", "operator"),
    ("auth-403-empty", IMAGINE, Reply(403), AuthenticationError, None, "refused imagine (HTTP 403).", "MJ_API_KEY"),
    ("plain-400", IMAGINE, Reply(400, f"bad key {KEY}".encode()), UpstreamRejectedError, None,
     "HTTP 400: bad key ***", "Change the arguments"),
    ("empty-400", IMAGINE, Reply(400), UpstreamRejectedError, None, "with HTTP 400.", "Change the arguments"),
    ("bare-404-route", LIST, Reply(404), UpstreamRejectedError, None, "does not offer list_tasks", "MJ_BASE_URL"),
    ("bare-404-prefix", IMAGINE, Reply(404, path="/fast/mj/submit/imagine"), UpstreamRejectedError, None,
     "speed-mode prefix '/fast'", "MJ_MODE_PREFIX"),
    ("bare-404-no-buttons", ACTION, Reply(404, path="/mj/submit/action"), UpstreamRejectedError, None,
     "does not offer action", "no buttons API"),
    ("404-task-in-path", FETCH, Reply(404), TaskNotFoundError, None, "The task was not found.", "recent_tasks"),
    ("ta-task-no-found", FETCH, Reply(404, body({"code": 0, "message": "task_no_found"})), TaskNotFoundError, 3,
     "task not found", "recent_tasks"),
    ("rate-limited-submit", IMAGINE, Reply(429, headers={"retry-after": "7"}), RateLimitedError, None,
     "imagine job was not accepted", "Wait 7 seconds"),
    ("not-json", IMAGINE, Reply(200, b"{oops"), ProtocolError, None, "not a JSON object", "may have been created"),
    ("no-valid-code", IMAGINE, Reply(200, body({"code": "x"})), ProtocolError, None, "has no valid code",
     "MJ_BASE_URL"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint", "reply", "error", "code", "message", "hint"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_each_reply_dialect_maps_to_one_error(
    endpoint: Endpoint, reply: Reply, error: type[MjError], code: int | None, message: str, hint: str
) -> None:
    call = submit_result if endpoint.paid else raise_for_http
    with pytest.raises(MjError) as info:
        call(endpoint, reply, SCRUB)
    assert type(info.value) is error
    assert getattr(info.value, "code", None) == code
    assert message in info.value.message
    assert hint in info.value.hint
    assert KEY not in str(info.value)


def test_an_accepted_submit_is_its_envelope() -> None:
    result = submit_result(IMAGINE, Reply(200, body({"code": 22, "description": "排队中", "result": 17})), SCRUB)
    assert (result.code, result.task_id) == (22, "17")


def test_an_upload_needs_no_task_id() -> None:
    reply = Reply(200, body({"code": 1, "description": "ok", "result": ["https://cdn/x.png"]}))
    assert submit_result(ENDPOINTS["upload_images"], reply, SCRUB).result == ["https://cdn/x.png"]


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(429, headers={"retry-after": "2"}), RateLimitedError),
        (Reply(503), UpstreamUnavailableError),
        (Reply(200), None),
        (Reply(404), None),
    ],
)
def test_only_429_and_5xx_are_worth_another_read(reply: Reply, error: type[MjError] | None) -> None:
    found = transient_error(LIST, reply)
    assert (type(found) if found is not None else None) is error


def test_reads_of_tasks() -> None:
    assert task_of("1", Reply(200, body({"id": "1", "status": "SUCCESS"}))).id == "1"
    with pytest.raises(TaskNotFoundError):
        task_of("1", Reply(204))
    assert [t.id for t in parse_list(Reply(200, body({"content": [{"id": "2"}]})))] == ["2"]
    with pytest.raises(ProtocolError):
        parse_list(Reply(200, body({"not": "a list"})))


def test_seed_and_cancel_envelopes() -> None:
    seed = ENDPOINTS["image_seed"]
    assert seed_of(seed, "1", Reply(200, body({"code": 1, "description": "", "result": "42"})), SCRUB) == "42"
    with pytest.raises(UpstreamRejectedError, match="No seed for task 1"):
        seed_of(seed, "1", Reply(200, body({"code": 4, "description": "", "result": None})), SCRUB)
    cancel = ENDPOINTS["cancel_task"]
    assert cancel_result(cancel, Reply(200), SCRUB) is None
    assert cancel_result(cancel, Reply(200, body({"code": 0, "description": "ok"})), SCRUB) is not None
    with pytest.raises(UpstreamRejectedError, match="演示模式"):
        cancel_result(cancel, Reply(200, body({"code": 4, "description": "演示模式，禁止操作"})), SCRUB)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Wed, 02 Dec 2026 12:00:30 GMT", 30.0),
        ("Wed, 02 Dec 2026 11:59:00 GMT", 0.0),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after(value, now=datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)) == seconds


def test_scrub_masks_the_key_and_shortens() -> None:
    assert SCRUB(f"  {KEY} " + "x" * 400).startswith("*** x")
    assert len(SCRUB("y" * 400)) == 301
    assert scrubber(None)(" text ") == "text"
    assert gloss("队列已满!") == "the queue is full; try again later (队列已满!)"


def test_a_reply_too_large_to_read_may_still_mean_a_paid_job() -> None:
    assert "may have been created" in too_large(IMAGINE, 200).hint
    assert too_large(LIST, 200).hint == ProtocolError.hint
