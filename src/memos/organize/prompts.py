"""Prompt text for evolution decisions, in English and Chinese."""

from __future__ import annotations

from memos.reader.prompts import Lang

SYSTEM: dict[Lang, str] = {
    "en": (
        "You keep a user's memory consistent. Each NEW memory is listed with EXISTING "
        "memories that may be about the same thing. For each NEW memory choose one action:\n"
        '"duplicate": an existing memory already says the same thing (target: its label).\n'
        '"merge": it adds detail to an existing memory about the same thing (target: its '
        "label; merged_value: one sentence that says both).\n"
        '"update": a changing state moved on, so the existing memory is no longer true '
        "(where the user lives, works, what they like or plan; target: its label).\n"
        '"add": anything else. One-time events (a trip, a meeting, a purchase) are always '
        '"add", even when they look like an earlier event.\n'
        'Reply with one JSON object: {"decisions": [{"new": 1, "action": "...", "target": '
        '"E1", "merged_value": "", "reason": "..."}]}, one decision per NEW memory.'
    ),
    "zh": (
        "你负责保持用户记忆的一致。每条新记忆(NEW)下列出了可能相关的已有记忆(EXISTING)。"
        "为每条新记忆选择一个动作：\n"
        '"duplicate"：已有记忆已表达相同内容（target 为其标签）。\n'
        '"merge"：为同一件事补充了细节（target 为其标签；merged_value 为合并后的一句话）。\n'
        '"update"：可变状态发生了变化，已有记忆不再成立'
        "（住址、工作、喜好、计划等；target 为其标签）。\n"
        '"add"：其他情况。一次性事件（旅行、会议、购买）总是 "add"，即使与以前的事件相似。\n'
        '只回复一个 JSON 对象：{"decisions": [{"new": 1, "action": "...", "target": "E1", '
        '"merged_value": "", "reason": "..."}]}，每条新记忆一个决定。'
    ),
}

USER: dict[Lang, str] = {
    "en": "{listing}\n\nDecide for each NEW memory.",
    "zh": "{listing}\n\n请为每条新记忆做出决定。",
}

REPAIR: dict[Lang, str] = {
    "en": "Your reply could not be used: {reason}. Reply again with only the JSON object.",
    "zh": "你的回复无法使用：{reason}。请只重新回复 JSON 对象。",
}
