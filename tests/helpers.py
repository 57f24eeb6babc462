"""Shared test helpers: running the real console script, test data loaders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SMSGUARD = [sys.executable, "-m", "bot"]


def run_cli(
    *args: str,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` as a separate process, the way a user or another tool would."""
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SMSGUARD_", "TELEGRAM_", "WECHAT_"))
    }
    full_env.update(env or {})
    full_env.setdefault("PYTHONPATH", str(ROOT))
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
