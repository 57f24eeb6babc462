"""`smsguard dashboard` as a real process on 127.0.0.1, read over HTTP (Datasette's JSON API)."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from bot.dashboard import DB_NAME, authorize, canned_queries, metadata
from tests.helpers import ROOT, SMSGUARD, child_env

# Bypass any HTTP proxy from the environment: the dashboard is on 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(base: str, path: str) -> tuple[int, bytes]:
    try:
        with _OPENER.open(base + urllib.parse.quote(path, safe="/?=&_.%"), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(base: str, path: str):
    status, body = get(base, path)
    assert status == 200, body[:300]
    return json.loads(body)


@pytest.fixture
def dashboard(case_db: Path):
    with sqlite3.connect(case_db) as conn:
        conn.execute("UPDATE cases SET feedback = 'down' WHERE id = 1")
        conn.execute(
            "INSERT INTO case_notify (case_id, channel, chat_id, created_at) VALUES (1, 'telegram', '987654321', 'x')"
        )
    port = free_port()
    env = child_env(SMSGUARD_DB=str(case_db), SMSGUARD_SECRET="test-secret")
    proc = subprocess.Popen(
        [*SMSGUARD, "dashboard", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dashboard exited: {proc.stderr.read() if proc.stderr else ''}")
            try:
                if get(base, "/-/versions.json")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("dashboard did not start in 30 s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_dashboard_serves_cases_and_canned_queries_read_only(dashboard, console_db):
    base = dashboard
    table = get_json(base, f"/{DB_NAME}/cases.json?_shape=objects&_size=100")
    rows = table["rows"]
    assert len(rows) == 10 and rows[0]["id"] > rows[-1]["id"]  # newest first
    assert {"verdict", "text", "confidence"} <= set(rows[0])
    # raw text was stored (STORE_RAW_TEXT) but never leaves the database; nor do user hashes
    assert all(r["raw_text"] is None and r["user_hash"] is None and r["message_key"] is None for r in rows)
    assert "13812345678" not in json.dumps(table, ensure_ascii=False)

    queue = get_json(base, f"/{DB_NAME}/review_queue.json?_shape=objects")
    first = queue["rows"][0]
    assert first["编号"] == 1 and first["差评"] == 1  # 👎 first
    visits = [r for r in queue["rows"] if "上门走访" in r["文本"]]
    assert visits and all(r["次数"] == 1 for r in visits)  # exact-text groups (near-duplicates: the CLI)
    for name in canned_queries(0.6):
        assert get(base, f"/{DB_NAME}/{name}.json")[0] == 200, name
    per_day = get_json(base, f"/{DB_NAME}/verdicts_per_day.json?_shape=objects")["rows"]
    assert sum(r["案例数"] for r in per_day) == 10
    facets = get_json(base, f"/{DB_NAME}/cases.json?_size=0&_facet=verdict")["facet_results"]
    assert "verdict" in facets

    assert get(base, f"/{DB_NAME}.db")[0] in (403, 404)  # no download of the file
    assert get(base, f"/{DB_NAME}.json?sql=select+raw_text+from+cases")[0] == 403  # no arbitrary SQL
    assert get(base, f"/{DB_NAME}/case_notify.json")[0] == 403  # chat ids of users who asked
    status, body = get(base, f"/{DB_NAME}/cases.json?_search=上门走访&_shape=objects")
    assert status == 200 and len(json.loads(body)["rows"]) == 3  # the trigram index works read-only
    assert b"987654321" not in get(base, f"/{DB_NAME}.json")[1]


def test_metadata_has_no_writable_query_and_chinese_labels():
    meta = metadata(0.6)
    assert meta["allow_sql"] is False
    db = meta["databases"][DB_NAME]
    assert all(not q.get("write") for q in db["queries"].values())
    assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in db["queries"].values())
    assert {"review_queue", "low_confidence", "verdicts_per_day", "platforms", "thumbs_down"} <= set(
        db["queries"]
    )
    assert db["tables"]["cases"]["columns"]["verdict"].startswith("自动判断")
    assert "confidence < 0.45" in canned_queries(0.45)["low_confidence"]["sql"]


def test_authorizer_blanks_private_columns_and_refuses_writes(console_db):
    conn = sqlite3.connect(f"file:{console_db}?mode=ro", uri=True)
    conn.set_authorizer(authorize)
    raw, user, text = conn.execute("SELECT raw_text, user_hash, text FROM cases WHERE id = 4").fetchone()
    assert raw is None and user is None and "[手机号]" in text
    assert conn.execute("SELECT count(*) FROM cases WHERE raw_text IS NOT NULL").fetchone()[0] == 0
    for sql in (
        "DELETE FROM cases",
        "UPDATE cases SET label = 'scam'",
        "ATTACH 'x.db' AS x",
        "DROP TABLE cases",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute(sql)
    conn.close()
