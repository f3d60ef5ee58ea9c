"""The upstreams' messages in English, the original kept in parentheses; unknown texts as they are."""

from __future__ import annotations

import pytest

from mj_mcp.glossary import english


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("并发数已达上限", "the account's limit of jobs running at once is reached; try again when one has finished"),
        ("排队中，前面还有3个任务", "queued, 3 jobs ahead"),
        ("该令牌无权访问模型 mj_video", "this token may not use model mj_video"),
        ("无权访问 vip 分组", "this token may not use group vip"),
        ("执行超时 5 分钟", "the job timed out after 5 minutes"),
        ("上游任务超时（超过1小时）", "the upstream did not finish the task within an hour"),
        ("账号不可用: 1234", "the account is unavailable"),
        ("提交失败，队列已满，请稍后重试", "the queue is full; try again later"),
        ("Prompt 不能为空", "the prompt is empty"),
        ("task_no_found ", "task not found"),
        ("unknown_action:MJ::BOOKMARK::1", "this gateway cannot relay the button MJ::BOOKMARK::1"),
        (
            "当前分组 default 下对于模型 mj_ 无可用渠道",
            "the gateway has no channel for this model, so nothing was started",
        ),
    ],
)
def test_known_messages_read_in_english_with_the_original(text: str, expected: str) -> None:
    assert english(text) == f"{expected} ({text})"


@pytest.mark.parametrize("text", ["", "[Invalid parameter] Unrecognized parameter(s): `--foo`", "未知错误", "ok"])
def test_unknown_texts_pass_through(text: str) -> None:
    assert english(text) == text


@pytest.mark.parametrize(
    "text", ["取消任务", "账号不可用", "base64或link不能为空", "演示模式，禁止操作", "unknown_action:"]
)
def test_english_is_idempotent(text: str) -> None:
    once = english(text)
    assert once != text
    assert english(once) == once
