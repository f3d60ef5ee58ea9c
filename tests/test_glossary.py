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


# Texts the upstreams' sources send (docs/upstream-api.md §1 and §4, upstream-audit.md), one per row
# added for issue 15: each reads in English, and reading it again changes nothing.
UPSTREAM_TEXTS = [
    "maskBase64不能为空",
    "base64 参数错误",
    "提交Imagine任务异常",
    "排队中",
    "任务已存在",
    "窗口等待",
    "成功",
    "State参数过长，最大255字符",
    "NotifyHook参数过长，最大2000字符",
    "服务暂不可用，请联系管理员",
    "访客今日绘图次数已达上限",
    "账号已被临时封锁，请勿使用违规词作图",
    "链接格式错误",
    "命令必须指定实例",
    "实例不存在或不可用",
    "当前账号不支持编辑/重绘任务",
    "任务类型错误",
    "未开启 REMIX，无法使用视频扩展功能",
    "服务不支持",
    "人脸图片不能为空",
    "目标图片不能为空",
    "人脸图片大小超过最大限制",
    "目标图片格式错误",
    "当前账号不支持 remix，请开启 remix 功能",
    "无效的 PicReader 索引",
    "未找到 Shortened prompts",
    "该任务所属渠道已被禁用",
    "发送图片消息到discord失败",
    "任务失败，请重试",
    "删除任务",
    "未找到父级任务",
    "超时，未找到消息",
    "操作失败，请稍后重试",
    "执行失败: no face found",
    "action_is_required",
]


@pytest.mark.parametrize("text", UPSTREAM_TEXTS)
def test_every_documented_upstream_text_reads_in_english(text: str) -> None:
    once = english(text)
    assert once.endswith(f" ({text})")
    assert not any("\u3400" <= ch <= "\u9fff" for ch in once.removesuffix(f" ({text})"))
    assert english(once) == once


def test_a_field_that_must_not_be_empty_is_named() -> None:
    assert english("maskBase64不能为空") == "maskBase64 must not be empty (maskBase64不能为空)"
