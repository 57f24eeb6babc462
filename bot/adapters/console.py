"""The console chat: the default channel of ``make run``.

Piped (stdin not a terminal): no banner or prompt, each input line is one message, each reply is printed
followed by one empty line. In a terminal, a message ends with an empty line, so a pasted multi-line SMS
stays one message; while it runs, edits to knowledge/ are picked up and old cases purged, as in a running bot
(but not on SIGHUP, which in a terminal means the terminal went away).
"""

from __future__ import annotations

import getpass
from typing import TextIO

from bot.maintenance import maintenance_jobs
from bot.service import Incoming, Service

BANNER = (
    "催收短信鉴别助手 · Collection-SMS Guard\n"
    "把收到的短信粘贴进来（可以多行），再按一次回车（空行）发送；也可以直接提问。\n"
    "输入“详细”看上一条的完整说明；Ctrl-D 退出。\n"
)
PROMPT = "> "
CONTINUATION = "… "


def _user_id() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers; the id is hashed anyway
        return "console"


def compact(text: str) -> str:
    """No empty lines inside a reply, so that the empty line after it marks its end for other programs."""
    return "\n".join(line for line in text.splitlines() if line.strip())


def run_piped(service: Service, stdin: TextIO, stdout: TextIO) -> int:
    user = _user_id()
    for line in stdin:
        out = service.handle(Incoming("console", user, "console", line.rstrip("\r\n")))
        if out is not None:
            stdout.write(compact(out.text) + "\n\n")
            stdout.flush()
    return 0


def run_terminal(service: Service, stdin: TextIO, stdout: TextIO) -> int:
    user = _user_id()
    stdout.write(BANNER + "\n")
    while True:
        lines: list[str] = []
        stdout.write(PROMPT)
        stdout.flush()
        while True:
            line = stdin.readline()
            if not line:  # Ctrl-D
                if lines:
                    break
                stdout.write("\n再见。\n")
                return 0
            line = line.rstrip("\r\n")
            if not line.strip():
                if lines:
                    break
                stdout.write(PROMPT)
                stdout.flush()
                continue
            lines.append(line)
            stdout.write(CONTINUATION)
            stdout.flush()
        out = service.handle(Incoming("console", user, "console", "\n".join(lines)))
        if out is not None:
            stdout.write("\n" + out.text + "\n\n")


def run_console(service: Service, stdin: TextIO, stdout: TextIO, retention_days: int | None = None) -> int:
    if stdin.isatty():
        with maintenance_jobs(service, retention_days):  # no SIGHUP: in a terminal it means "closed"
            return run_terminal(service, stdin, stdout)
    return run_piped(service, stdin, stdout)  # one pass over stdin: no background jobs
