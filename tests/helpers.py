"""Shared test helpers: running the real console script, test data loaders."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SMSGUARD = [sys.executable, "-m", "bot"]


_SETTING_PREFIXES = ("SMSGUARD_", "TELEGRAM_", "WECHAT_")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``python -m bot``: this one without any project setting (so a developer's
    values never leak into a test), the checkout on PYTHONPATH, plus ``extra``."""
    from bot.settings import Settings

    ours = set(Settings.model_fields)
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith(_SETTING_PREFIXES)}
    return env | {"PYTHONPATH": str(ROOT)} | extra


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` as a separate process, the way a user or another tool would."""
    full_env = child_env(**(env or {}))
    return subprocess.run(
        [*SMSGUARD, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
    )


def check_json(*args: str, **kw: Any) -> dict[str, Any]:
    proc = run_cli("check", "--json", *args, **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def verdict_cases() -> list[dict[str, Any]]:
    return yaml.safe_load((DATA / "verdict_cases.yaml").read_text(encoding="utf-8"))


# Messages for a case database filled through the console chat (operators' tests): near-duplicates, a
# question, personal data to redact, small talk.
CONSOLE_MESSAGES = [
    "【XX金融】您的借款已逾期20天，我司将安排专员上门走访核实您的还款能力。",
    "【XX金融】您的借款已逾期25天，我司将安排专员上门走访核实您的还款能力。",
    "【XX金融】您的借款已逾期31天，我司将安排专员上门走访核实您的还款能力！",
    "尊敬的张伟先生，再不还款就爆你通讯录，联系催收员13812345678",
    "【京东金融】您的白条账户未注销将影响征信，请添加客服QQ办理注销并将额度转入监管账户。",
    "催收说明天要派人来我家门口堵我，我该怎么应对才好",
    "晚上一起吃火锅吗？",
    "【工商银行】您尾号8812的信用卡本期应还1,250.00元，到期还款日12月05日。",
    "您好，(2026)京0105民初23145号案件已立案，请登录人民法院在线服务查看起诉状，或致电12368核实。",
    "你好",
]


def fill_case_db(path: Path, messages: list[str] | None = None, **env: str) -> None:
    """Log cases the way users do: the console chat, piped, with SMSGUARD_DB=path."""
    stdin = "\n".join(messages or CONSOLE_MESSAGES) + "\n"
    proc = run_cli(
        "chat", stdin=stdin, env={"SMSGUARD_DB": str(path), "SMSGUARD_SECRET": "test-secret", **env}
    )
    assert proc.returncode == 0, proc.stderr


class BotChild:
    """``python -m bot ARGS`` running in ``tmp`` (a fresh directory, so no developer's .env is read), its
    stderr in a file the test can read at any time; :meth:`stop` signals, waits, and kills if it must."""

    def __init__(self, tmp: Path, args: list[str], env: dict[str, str]):
        self.stderr_path = tmp / "stderr.log"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [*SMSGUARD, *args], env=env, cwd=tmp, stderr=self._stderr, stdout=subprocess.DEVNULL
        )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._stderr.close()


# --- a webhook on loopback ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def post_update(
    port: int, body: Any, secret: str | None, *, path: str = "tg/hook", timeout: float = 30
) -> int | None:
    """POST an update as Telegram does; the HTTP status, or None when the connection broke without one."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return None
