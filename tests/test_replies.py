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
    submit_failure,
    submit_result,
    task_of,
    too_large,
    transient_error,
)
from mj_mcp.upstreams import PROFILES

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


# -- per profile (MJ_UPSTREAM): each row is a reply the upstream's source sends -------------------

SPRING_404 = body({"timestamp": "2026-12-01T10:00:00.000+00:00", "status": 404, "error": "Not Found", "path": "/mj/x"})
NEW_API_403 = body({"error": {"message": "该令牌无权访问模型 mj_video", "type": "new_api_error"}})
SEED = ENDPOINTS["image_seed"]

# profile, endpoint, reply, error class, message fragment, hint fragment, fragment the message must NOT have
PROFILE_ROWS: list[tuple[str, str, Endpoint, Reply, type[MjError], str, str, str]] = [
    # B5: the reason of a 401/403 is shown, and only a reason about the key blames the key.
    ("na-403-model", "new-api", IMAGINE, Reply(403, NEW_API_403), AuthenticationError,
     "this token may not use model mj_video (该令牌无权访问模型 mj_video)", "operator", "MJ_UPSTREAM"),
    ("na-401-token", "new-api", IMAGINE,
     Reply(401, body({"error": {"message": "无效的令牌", "type": "new_api_error"}})), AuthenticationError,
     "refused the key (HTTP 401): the token is not valid (无效的令牌)", "MJ_API_KEY", "MJ_UPSTREAM"),
    ("ta-401-disabled", "trueai", IMAGINE, Reply(401, "账号已禁用".encode()), AuthenticationError,
     "the account is disabled (账号已禁用)", "MJ_API_KEY", "MJ_UPSTREAM"),
    ("ta-401-header", "trueai", IMAGINE, Reply(401, b"Authorization header missing."), AuthenticationError,
     "Authorization header missing.", "MJ_AUTH_HEADER", "operator"),
    ("ta-403-unavailable", "trueai", ACTION, Reply(403, "账号不可用".encode()), AuthenticationError,
     "refused action (HTTP 403): the account is unavailable", "Nothing was started", "MJ_UPSTREAM"),
    # B8: trueai's per-user limits mean "try later".
    ("ta-concurrency", "trueai", IMAGINE, Reply(200, body({"code": 4, "description": "并发数已达上限"})),
     RateLimitedError, "jobs running at once", "running jobs has finished", "Change the arguments"),
    ("ta-queue-limit", "trueai", ACTION, Reply(200, body({"success": False, "code": -1, "message": "队列数已达上限"})),
     QueueFullError, "queue limit", "queued jobs have started", "MJ_UPSTREAM"),
    ("ta-daily", "trueai", IMAGINE, Reply(200, body({"code": 4, "description": "今日绘图次数已达上限"})),
     RateLimitedError, "daily limit", "tomorrow", "MJ_UPSTREAM"),
    # B4: novicezk's Spring 404 is a missing route, with the route's hint; even where the id is in the path.
    ("nz-404-action", "novicezk", ACTION, Reply(404, SPRING_404, path="/mj/submit/action"), UpstreamRejectedError,
     "does not offer action", "no buttons API", "request body was not accepted"),
    ("nz-404-seed", "novicezk", SEED, Reply(404, SPRING_404), UpstreamRejectedError, "does not offer image_seed",
     "does not support it", "not found"),
    # new-api's gateway errors at 400.
    ("na-400-button", "new-api", ACTION, Reply(400, body({"error": {"message": "unknown_action:MJ::Job::PicReader::1",
     "type": "new_api_error"}})), UpstreamRejectedError, "cannot relay the button MJ::Job::PicReader::1",
     "Change the arguments", "MJ_UPSTREAM"),
    # Fingerprints: a reply of another program names the MJ_UPSTREAM that fits.
    ("plus-gets-new-api-403", "plus", IMAGINE, Reply(403, NEW_API_403), AuthenticationError,
     "This looks like a new-api gateway: set MJ_UPSTREAM=new-api.", "operator", "MJ_UPSTREAM=plus"),
    ("plus-gets-dashboard", "plus", LIST, Reply(200, b"<!DOCTYPE html><html>", {"content-type": "text/html"}),
     UpstreamRejectedError, "set MJ_UPSTREAM=new-api", "Gateways such as new-api", "MJ_UPSTREAM=plus"),
    ("plus-gets-ta-envelope", "plus", IMAGINE, Reply(200, body({"success": False, "code": -1, "message": "参数错误"})),
     UpstreamRejectedError, "set MJ_UPSTREAM=trueai", "Change the arguments", "new-api"),
    ("plus-gets-spring-404", "plus", ACTION, Reply(404, SPRING_404), UpstreamRejectedError,
     "set MJ_UPSTREAM=novicezk", "no buttons API", "request body"),
    ("new-api-gets-spring-404", "new-api", LIST, Reply(404, SPRING_404), UpstreamRejectedError,
     "set MJ_UPSTREAM=novicezk", "MJ_BASE_URL", "new-api"),
    ("trueai-gets-dashboard", "trueai", LIST, Reply(200, b"<html></html>"), UpstreamRejectedError,
     "set MJ_UPSTREAM=new-api", "Gateways", "trueai"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("upstream", "endpoint", "reply", "error", "message", "hint", "absent"),
    [row[1:] for row in PROFILE_ROWS],
    ids=[row[0] for row in PROFILE_ROWS],
)
def test_each_profile_reads_its_upstream_s_replies(
    upstream: str, endpoint: Endpoint, reply: Reply, error: type[MjError], message: str, hint: str, absent: str
) -> None:
    call = submit_result if endpoint.paid else raise_for_http
    with pytest.raises(MjError) as info:
        call(endpoint, reply, SCRUB, PROFILES[upstream])
    assert type(info.value) is error
    assert message in info.value.message
    assert hint in info.value.hint
    assert absent not in info.value.message


def test_the_mode_prefix_404_hint_no_longer_sends_users_to_the_style_new_api_drops() -> None:
    with pytest.raises(UpstreamRejectedError) as info:
        submit_result(IMAGINE, Reply(404, path="/fast/mj/submit/imagine"), SCRUB, PROFILES["plus"])
    assert "MJ_MODE_PREFIX=prompt" in info.value.hint
    assert "other style" not in info.value.hint


@pytest.mark.parametrize(
    ("upstream", "properties", "code"),
    [
        ("plus", {"status": "SUCCESS", "imageUrl": "https://cdn/x.png"}, 1),
        ("novicezk", {"status": "IN_PROGRESS"}, 1),
        ("new-api", {"status": "SUCCESS"}, 1),
        ("trueai", {"status": "SUCCESS"}, 21),  # trueai's 21 is always a MODAL wait
        ("plus", {"finalPrompt": "a cat", "remix": True}, 21),  # the MODAL reply (PLUS docs, new-api's kept 21)
        ("new-api", {"status": "MODAL"}, 21),
    ],
)
def test_code_21_is_read_per_profile(upstream: str, properties: dict[str, Any], code: int) -> None:
    """Audit B6: a 21 that says the task exists was always shown as MODAL."""
    reply = Reply(200, body({"code": 21, "description": "任务已存在", "result": "42", "properties": properties}))
    result = submit_result(IMAGINE, reply, SCRUB, PROFILES[upstream])
    assert (result.code, result.task_id) == (code, "42")


def test_new_api_s_gateway_503_is_a_refusal_and_other_5xx_an_unknown_outcome() -> None:
    no_channel = body({"error": {"message": "当前分组 vip 下对于模型 mj_video 无可用渠道", "type": "new_api_error"}})
    refused = submit_failure(ENDPOINTS["video"], Reply(503, no_channel), SCRUB, PROFILES["new-api"])
    assert type(refused) is UpstreamRejectedError
    assert "Nothing was started" in refused.message and "nothing is paid" in refused.hint
    assert "set MJ_UPSTREAM=new-api" in submit_failure(IMAGINE, Reply(503, no_channel), SCRUB, PROFILES["plus"]).message
    for reply in (Reply(503), Reply(500, no_channel), Reply(503, body({"code": 9}))):
        assert type(submit_failure(IMAGINE, reply, SCRUB, PROFILES["new-api"])) is SubmitOutcomeUnknownError


def test_a_task_never_carries_the_callback_url_and_its_fail_reason_is_in_english() -> None:
    """Audit B9: NZ and TA return the notifyHook (whose path is a secret) in properties."""
    hook = "http://me.example:8000/mj-callback/SECRET-PATH"
    raw = {"id": "1", "status": "FAILURE", "failReason": "执行超时 5 分钟", "notifyHook": hook,
           "properties": {"notifyHook": hook, "finalPrompt": "a cat"}}  # fmt: skip
    task = task_of("1", Reply(200, body(raw)))
    listed = parse_list(Reply(200, body([raw])))[0]
    for found in (task, listed):
        assert "SECRET-PATH" not in json.dumps(found.to_wire())
        assert found.properties == {"finalPrompt": "a cat"}
        assert found.fail_reason == "the job timed out after 5 minutes (执行超时 5 分钟)"
    accepted = submit_result(
        IMAGINE, Reply(200, body({"code": 1, "result": "1", "properties": {"notifyHook": hook}})), SCRUB
    )
    assert accepted.properties == {}
