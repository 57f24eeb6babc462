"""``smsguard dashboard``: Datasette over the case database, read-only, for operators on 127.0.0.1.

Read-only three times over: Datasette opens the file with ``mode=ro``; an SQLite authorizer on every
connection to it refuses anything but reading; and no canned query is writable, arbitrary SQL is off and
the database file cannot be downloaded. The same authorizer blanks ``raw_text`` (filled only with
STORE_RAW_TEXT), ``user_hash`` and ``message_key`` and the follow-up chat ids: they read as NULL in every
page, facet, export and query.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

DB_NAME = "smsguard"
PRIVATE_COLUMNS = {"cases": frozenset({"raw_text", "user_hash", "message_key"})}
PRIVATE_TABLES = frozenset({"case_notify", "sqlite_dbpage"})

# Actions a reading connection needs; everything else (writes, ATTACH, schema changes) is refused.
_READ_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
    }
)

COLUMN_LABELS = {
    "id": "编号",
    "created_at": "时间（UTC）",
    "channel": "渠道（console/telegram/wechat）",
    "user_hash": "不显示",
    "message_key": "不显示",
    "kind": "类型：sms 短信 / question 提问",
    "verdict": "自动判断：scam 诈骗 · illegal_collection 违法催收 · pressure 施压式催收 · legal_notice 法律程序"
    " · reminder 还款提醒 · unrelated 无关",
    "confidence": "把握（0–1）",
    "text": "文本（已脱敏）",
    "raw_text": "不显示",
    "signals": "触发的信号及原文依据（已脱敏）",
    "topics": "匹配到的话题",
    "entities": "提取的要素（已脱敏）",
    "platforms": "涉及的平台",
    "reply": "机器人的回复（已脱敏）",
    "crisis": "是否触发危机支持",
    "throttled": "是否因发送过快而未分析",
    "feedback": "用户反馈：up 👍 / down 👎",
    "label": "人工标注的判断",
    "label_topic": "人工标注的话题",
    "note": "复核备注（已脱敏）",
    "reviewed_at": "复核时间（UTC）",
    "kb_version": "知识库版本",
    "analysis_ms": "分析耗时（毫秒）",
    "promoted_at": "加入知识库的时间",
    "promoted_topic": "加入的话题",
}


def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _source: str | None) -> int:
    """SQLite authorizer for dashboard connections: read only, private columns read as NULL."""
    if action not in _READ_ACTIONS:
        # Opening an FTS5 table declares its schema, which SQLite reports as an update of sqlite_master; the
        # connection is read-only (mode=ro), so nothing is written either way.
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ:
        if arg1 in PRIVATE_TABLES:
            return sqlite3.SQLITE_DENY if arg1 == "sqlite_dbpage" else sqlite3.SQLITE_IGNORE
        if arg2 in PRIVATE_COLUMNS.get(arg1 or "", ()):
            return sqlite3.SQLITE_IGNORE
    return sqlite3.SQLITE_OK


def canned_queries(low_confidence: float) -> dict[str, dict[str, Any]]:
    low = float(low_confidence)
    return {
        "review_queue": {
            "title": "待复核队列",
            "description": (
                f"未标注的案例，相同文本合并计数；把握低于 {low} 或有 👎 的排在前面，其次是没有匹配到话题的，"
                "同一档里问得多的在前。近似文本的合并请用 smsguard cases queue。"
            ),
            "sql": f"""SELECT min(id) AS 编号, count(*) AS 次数, verdict AS 自动判断,
       round(min(confidence), 3) AS 最低把握, sum(feedback = 'down') AS 差评,
       max(coalesce(topics, '[]') = '[]') AS 未匹配, max(created_at) AS 最近, text AS 文本
FROM cases
WHERE label IS NULL AND promoted_at IS NULL AND throttled = 0
GROUP BY text, verdict
ORDER BY (min(confidence) < {low} OR max(feedback = 'down')) DESC, max(coalesce(topics, '[]') = '[]') DESC,
         count(*) DESC, max(id) DESC
LIMIT 200""",
        },
        "low_confidence": {
            "title": "低把握案例",
            "description": f"自动判断的把握低于 {low}（LOW_CONFIDENCE），最新的在前。",
            "sql": f"""SELECT id AS 编号, created_at AS 时间, verdict AS 自动判断, round(confidence, 3) AS 把握,
       label AS 人工标注, feedback AS 反馈, text AS 文本
FROM cases WHERE confidence < {low} ORDER BY id DESC LIMIT 500""",
        },
        "verdicts_per_day": {
            "title": "每日判断分布",
            "description": "每天各类自动判断的案例数（UTC 日期，不含限流未分析的消息）。",
            "sql": """SELECT substr(created_at, 1, 10) AS 日期, verdict AS 自动判断, count(*) AS 案例数
FROM cases WHERE throttled = 0 GROUP BY 1, 2 ORDER BY 1 DESC, 3 DESC""",
        },
        "platforms": {
            "title": "平台分布",
            "description": "案例里提到的借贷平台，按案例数排序。",
            "sql": """SELECT j.value AS 平台, count(*) AS 案例数,
       sum(cases.verdict = 'scam') AS 疑似诈骗, sum(cases.verdict = 'illegal_collection') AS 违法催收
FROM cases, json_each(cases.platforms) AS j
WHERE cases.platforms IS NOT NULL GROUP BY 1 ORDER BY 2 DESC""",
        },
        "thumbs_down": {
            "title": "👎 反馈",
            "description": "用户说“没帮助”的案例，最新的在前。",
            "sql": """SELECT id AS 编号, created_at AS 时间, verdict AS 自动判断, round(confidence, 3) AS 把握,
       label AS 人工标注, note AS 备注, text AS 文本
FROM cases WHERE feedback = 'down' ORDER BY id DESC LIMIT 500""",
        },
        "unmatched": {
            "title": "未匹配到话题",
            "description": "知识库里没有找到相关话题的消息：补充问法的候选（smsguard cases promote）。",
            "sql": """SELECT id AS 编号, created_at AS 时间, kind AS 类型, verdict AS 自动判断, text AS 文本
FROM cases WHERE throttled = 0 AND coalesce(topics, '[]') = '[]' ORDER BY id DESC LIMIT 500""",
        },
    }


def metadata(low_confidence: float) -> dict[str, Any]:
    return {
        "title": "催收短信鉴别助手 · 案例看板",
        "description": (
            "只读。文本、依据、回复和备注都已脱敏；原文、用户标识和通知用的聊天号不显示。"
            "标注和导出请用命令行 smsguard cases。"
        ),
        "allow_sql": False,
        "databases": {
            DB_NAME: {
                "title": "案例库",
                "description": "每条用户消息一行（表 cases）。",
                "tables": {
                    "cases": {
                        "title": "案例",
                        "description": "全部案例，最新的在前；左侧可按判断、标注、渠道、反馈、平台筛选。",
                        "sort_desc": "id",
                        "label_column": "text",
                        "facets": [
                            "verdict",
                            "label",
                            "channel",
                            "kind",
                            "feedback",
                            {"array": "platforms"},
                        ],
                        "columns": COLUMN_LABELS,
                    },
                    "case_notify": {"hidden": True, "allow": False},  # chat ids of users who asked
                    "_sqlite_migrations": {"hidden": True},
                },
                "queries": canned_queries(low_confidence),
            }
        },
    }


def prepare_connection(conn: sqlite3.Connection, database: str, datasette: Any) -> None:
    """Datasette plugin hook: :func:`build_datasette` marks it and registers this module as a plugin."""
    if database == DB_NAME:
        conn.set_authorizer(authorize)


def build_datasette(db_path: Path, low_confidence: float) -> Any:
    from datasette import hookimpl
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    if pm.get_plugin("smsguard-guard") is None:
        hookimpl(prepare_connection)  # Datasette is imported only here, for the dashboard command
        pm.register(sys.modules[__name__], name="smsguard-guard")
    ds = Datasette(
        memory=False,
        metadata=metadata(low_confidence),
        settings={
            "allow_download": False,  # the file holds raw_text when STORE_RAW_TEXT is on
            "default_page_size": 50,
            "sql_time_limit_ms": 3000,
            "num_sql_threads": 3,
        },
    )
    ds.add_database(Database(ds, path=str(db_path), is_mutable=True), name=DB_NAME)
    ds.remove_database("_memory")  # arbitrary SQL is off anyway; nothing to show there
    return ds


def serve(db_path: Path, host: str, port: int, low_confidence: float) -> None:
    import asyncio

    import uvicorn

    ds = build_datasette(db_path, low_confidence)
    asyncio.run(ds.invoke_startup())
    uvicorn.run(ds.app(), host=host, port=port, log_level="warning", lifespan="on")
