"""The upstreams' own messages in English: one table, with the original kept in parentheses.

The midjourney-proxy family answers in Chinese (validation, queue, account, ban and failReason
texts) and new-api in snake_case codes; a model or a reader should not have to guess. Each row of
`GLOSSARY` is a pattern found in what the upstreams' sources send (docs/upstream-api.md §4,
upstream-audit.md) and an English sentence; `{1}`, `{2}` are the pattern's groups (a model name,
a count). `english` gives `"<english> (<original>)"` for a text that holds a known phrase, and
any other text as it is. It is idempotent, because a task may be read twice (a poll, then the
same task from a callback).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["GLOSSARY", "english", "english_or_none"]

_ROWS: Final[tuple[tuple[str, str], ...]] = (
    # Per-user limits and queues (TA; NZ's queue full).
    (r"队列数已达上限", "the account's queue limit is reached; try again when a running job has finished"),
    (r"并发数已达上限", "the account's limit of jobs running at once is reached; try again when one has finished"),
    (r"今日绘图次数已达上限", "the account's daily limit of jobs is reached; try again tomorrow"),
    (r"排队中，前面还有\s*(\d+)\s*个任务", "queued, {1} jobs ahead"),
    (r"队列已满", "the queue is full; try again later"),
    (r"提交失败，系统异常", "the upstream failed to submit the job (system error)"),
    (r"提交(\w+)任务异常", "the upstream failed to submit the {1} job"),
    (r"提交成功", "submitted"),
    (r"排队中", "queued"),
    (r"任务已存在", "the task already exists"),
    (r"窗口等待", "waiting for confirmation: call modal"),
    (r"^成功$", "success"),
    # Accounts, channels, tokens (NZ, TA, new-api).
    (r"无可用的账号实例", "no upstream account is available"),
    (r"账号不可用", "the account is unavailable"),
    (r"账号已禁用", "the account is disabled"),
    (r"账号无权限", "the account lacks the permission for this"),
    (r"账号已被临时封锁", "the account is blocked for a while for banned words; do not use them"),
    (r"命令必须指定实例", "this command must name an account instance (instanceId)"),
    (r"实例不存在或不可用", "the account instance does not exist or is unavailable"),
    (r"实例不可用", "the upstream account instance is unavailable"),
    (r"服务暂不可用", "the service is unavailable for now; ask its administrator"),
    (r"服务不支持", "this upstream does not offer this service"),
    (r"当前账号不支持 ?remix", "remix is off for this account; turn it on to use this"),
    (r"当前账号不支持编辑/重绘任务", "this account cannot run edit or retexture jobs"),
    (r"未开启 ?REMIX，无法使用视频扩展功能", "remix is off, so the video cannot be extended"),
    (r"该任务所属渠道已被禁用", "the gateway channel of this task is disabled"),
    (r"无效的令牌", "the token is not valid"),
    (r"令牌已过期", "the token has expired"),
    (r"令牌额度已用尽", "the token's quota is used up"),
    (r"该令牌无权访问模型\s*(\S+)", "this token may not use model {1}"),
    (r"无权访问\s*(\S+)\s*分组", "this token may not use group {1}"),
    (r"无可用渠道", "the gateway has no channel for this model, so nothing was started"),
    (r"获取渠道信息失败", "the gateway lost the channel that ran this task; ask its administrator"),
    (r"当前分组负载已饱和", "the gateway's group is saturated; try again in a little while"),
    (r"用户已被封禁", "the user is banned on this gateway"),
    (r"额度不足|余额不足", "the account's quota is used up"),
    # Validation (NZ, TA).
    (r"[Pp]rompt ?不能为空", "the prompt is empty"),
    (r"可能包含敏感词", "the prompt may contain a banned word"),
    (r"base64或link不能为空", "an image (base64 or link) is required"),
    (r"base64格式错误", "an image is not valid base64"),
    (r"base64不能为空", "an image is required"),
    (r"base64List参数错误", "the image list is wrong"),
    (r"dimensions参数错误", "dimensions must be PORTRAIT, SQUARE or LANDSCAPE"),
    (r"content参数错误", "content must look like '<taskId> U1..U4|V1..V4|R'"),
    (r"taskId不能为空", "taskId is required"),
    (r"action参数错误", "action is wrong"),
    (r"关联任务不存在或已失效", "the referenced task does not exist or has expired"),
    (r"关联任务状态错误", "the referenced task is not in a state that allows this (it must be SUCCESS)"),
    (r"关联任务不允许执行变化", "the referenced task does not allow this change"),
    (r"该任务不支持重新生成", "this task cannot be rerolled"),
    (r"目标任务不存在", "the target task does not exist"),
    (r"未知的 ?Action ?类型", "unknown button (customId)"),
    (r"图片参数错误，2~5张图片", "blend needs 2 to 5 images"),
    (r"image或prompt不能为空", "image and prompt are both required"),
    (r"人脸图片和目标图片不能相同", "the face and target images must differ"),
    (r"请填写 ?job id 或 ?url", "a job id or URL is required"),
    (r"job id 格式错误", "the job id is not a Midjourney job UUID"),
    (r"未找到 ?seed", "no seed was found for this task"),
    (r"禁止上传", "image uploads (base64) are disabled on this upstream"),
    (r"视频功能未启用", "video is not enabled on this upstream"),
    (r"演示模式，禁止操作", "this account may not do this (demo mode; admin only)"),
    (r"[Ss]tate参数过长", "state is too long (at most 255 characters)"),
    (r"[Nn]otify[Hh]ook参数过长", "notifyHook is too long"),
    (r"链接格式错误", "the link must be an http or https URL"),
    (r"任务类型错误", "the task is of the wrong kind for this"),
    (r"无效的 ?PicReader ?索引", "the describe prompt number is not valid"),
    (r"未找到 ?Shortened prompts", "no shortened prompts were found"),
    (r"未找到父级任务", "the parent task was not found"),
    (r"人脸图片不能为空", "the face image (sourceBase64) is required"),
    (r"目标图片不能为空", "the target image (targetBase64) is required"),
    (r"(人脸|目标)图片大小超过最大限制", "an image is larger than allowed"),
    (r"(人脸|目标)图片格式错误", "an image is not in a format the upstream reads"),
    (r"([A-Za-z][A-Za-z0-9_]*)\s*不能为空", "{1} must not be empty"),
    (r"([A-Za-z][A-Za-z0-9_]*)\s*参数错误", "{1} is wrong"),
    (r"([A-Za-z][A-Za-z0-9_]*)\s*格式错误", "{1} is malformed"),
    (r"参数错误", "a parameter is wrong"),
    # Task failures (failReason).
    (r"上游任务超时", "the upstream did not finish the task within an hour"),
    (r"执行超时\s*(\d+)\s*分钟", "the job timed out after {1} minutes"),
    (r"任务提交超时", "submitting the job timed out"),
    (r"任务超时", "the job timed out"),
    (r"取消任务", "the task was cancelled"),
    (r"超时，未找到消息", "timed out: Midjourney's reply was not found"),
    (r"删除任务", "the task was deleted"),
    (r"上传图片到discord失败", "uploading the image to Discord failed"),
    (r"发送图片消息到discord失败", "sending the image message to Discord failed"),
    (r"任务失败，请重试", "the job failed (often: the account's credits are used up); try again"),
    (r"执行失败", "the job failed"),
    (r"服务异常，请稍后重试", "the upstream failed; try again later"),
    (r"操作失败，请稍后重试", "the operation failed; try again later"),
    (r"操作失败", "the upstream failed"),
    # new-api's own codes.
    (r"task_no(?:t)?_found", "task not found"),
    (r"task_status_not_success", "the referenced task has not succeeded"),
    (r"quota_not_enough", "the account's quota is used up"),
    (r"index_is_required", "index (1-4) is required"),
    (r"action_is_required", "action is required"),
    (r"index_parse_failed", "index could not be read"),
    (r"prompt_is_required", "the prompt is required"),
    (r"task_id_is_required", "taskId is required"),
    (r"custom_id_is_required", "customId is required"),
    (r"content_is_required", "content is required"),
    (r"content_parse_failed", "content could not be read"),
    (r"unknown_action:?\s*(\S*)", "this gateway cannot relay the button {1}"),
    (r"bind_request_body_failed", "the gateway could not read the request"),
    (r"sour_base64_and_target_base64_is_required", "both images are required"),
    (r"do_request_failed", "the gateway could not reach its upstream"),
    (r"empty_response_body", "the gateway's upstream sent an empty reply"),
)

GLOSSARY: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple((re.compile(p), e) for p, e in _ROWS)
"""(pattern, English) in the order tried: longer, more specific phrases first."""

_TRANSLATED: Final = re.compile(r"^[^\u3400-\u9fff(]+ \((?P<original>.+)\)$", re.DOTALL)


def english(text: str) -> str:
    """`"<English> (<text>)"` when `text` holds a known upstream phrase; otherwise `text` unchanged."""
    done = _TRANSLATED.match(text)
    if done is not None and _sentence(done.group("original")) is not None:
        return text  # already "<English> (<original>)"
    sentence = _sentence(text)
    return f"{sentence} ({text})" if sentence is not None and text.strip() else text


def english_or_none(text: str | None) -> str | None:
    """`english(text)`, and None for None (an optional field such as a task's failReason)."""
    return english(text) if text else text


def _sentence(text: str) -> str | None:
    for pattern, sentence in GLOSSARY:
        found = pattern.search(text)
        if found is not None:
            groups = [g or "" for g in found.groups()]
            return sentence.format("", *groups).replace("  ", " ").strip()
    return None
