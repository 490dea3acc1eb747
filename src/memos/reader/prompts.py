"""Prompt text for fine-mode extraction, in English and Chinese.

Kept short on purpose: the whole prompt, the schema and a chat window must fit
small local models' context. The JSON shape itself is enforced by the schema
(``memos.reader.fine.extraction_schema``); the prompt explains what goes in it.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["en", "zh"]

SYSTEM = {
    "en": (
        "You extract long-term memories from a conversation. Reply with one JSON object only.\n"
        '"memories": facts worth remembering. memory_type "UserMemory" for facts about the '
        'user, "LongTermMemory" for facts about the world or the conversation. key: a short '
        "title; value: one self-contained sentence in the third person; tags: 1-4 short topic "
        "words; confidence: 0 to 1; sources: the [numbers] of the messages it comes from.\n"
        '"preferences": what the user likes, dislikes or wants. preference_type '
        '"explicit_preference" when the user said it, "implicit_preference" when it is '
        "inferred; reasoning: why.\n"
        "Write dates as absolute dates: resolve words such as yesterday or next Friday "
        "against the message's time. Do not invent facts; use empty lists when nothing is "
        "worth keeping."
    ),
    "zh": (
        "你从对话中提取长期记忆。只回复一个 JSON 对象。\n"
        '"memories"：值得记住的事实。关于用户本人的事实 memory_type 为 "UserMemory"，'
        '关于世界或对话的事实为 "LongTermMemory"。key：简短标题；value：一句完整的第三人称陈述；'
        "tags：1-4 个主题词；confidence：0 到 1；sources：事实来自的消息[编号]。\n"
        '"preferences"：用户喜欢、不喜欢或想要的东西。用户明确说出的为 "explicit_preference"，'
        '推断出的为 "implicit_preference"；reasoning：理由。\n'
        "日期一律写成绝对日期：根据消息时间换算“昨天”“下周五”等说法。不要编造；没有值得保存的内容时返回空列表。"
    ),
}

TOOL_HINT = {
    "en": (
        '\n"tool_memories": what the tool calls show. tool_type "ToolTrajectoryMemory" for how '
        'a task was done with tools, "ToolSchemaMemory" for what a tool is and takes. '
        "tool_value: a summary; tool_used_status: one entry per tool used, with used_tool, "
        'error_type ("" when it worked), success_rate (0 to 1) and tool_experience; '
        'experience: a "when ..., then ..." lesson for next time.'
    ),
    "zh": (
        '\n"tool_memories"：工具调用体现的经验。用工具完成任务的过程为 "ToolTrajectoryMemory"，'
        '工具本身的说明为 "ToolSchemaMemory"。tool_value：概述；'
        "tool_used_status：每个用到的工具一条，"
        '含 used_tool、error_type（成功时为 ""）、success_rate（0 到 1）和 tool_experience；'
        "experience：形如“当……时，应……”的经验。"
    ),
}

USER = {
    "en": "Conversation (message time in parentheses):\n{transcript}\n\nExtract the memories.",
    "zh": "对话（括号内为消息时间）：\n{transcript}\n\n请提取记忆。",
}

REPAIR = {
    "en": (
        "Your reply could not be used: {reason}. Reply again with only the JSON object, "
        "complete and valid."
    ),
    "zh": "你的回复无法使用：{reason}。请只重新回复完整、合法的 JSON 对象。",
}

NO_TIME = {"en": "time unknown", "zh": "时间未知"}


def detect_language(text: str) -> Lang:
    """``zh`` when CJK characters make up a fifth of the letters, else ``en``."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if "\u4e00" <= c <= "\u9fff")
    return "zh" if cjk * 5 >= len(letters) else "en"
