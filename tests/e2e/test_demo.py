"""`carepulse demo` as a person runs it: alerts for the deteriorating patient, none for the
stable one, then Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carepulse.shared.demo.scenario import ROLES

pytestmark = pytest.mark.e2e


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_demo_shows_alerts_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "CAREPULSE_RUN_DIR": str(tmp_path / "run"), "COLUMNS": "200", "TERM": "dumb"}
    cli = [sys.executable, "-c", "from carepulse.shared.cli.main import run; run()"]
    proc = subprocess.Popen([*cli, "demo", "--free-ports", "--pause", "0.3"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    started = time.monotonic()
    try:
        assert proc.stdout is not None
        while time.monotonic() - started < 150:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            text = "\n".join(lines)
            if "all rounds sent" in text and "Possible sepsis: HIGH" in text and "RESOLVED" in text:
                break
        services = children_of(proc.pid)
        assert len(services) >= 7  # broker, Redis and five services
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        lines += rest.splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "\n".join(lines)
    assert proc.returncode == 0, text[-3000:]
    assert "CarePulse stopped." in text
    alerts = [ln for ln in lines if ln.startswith(("ALERT", "RESOLVED"))]
    det, stable = ROLES["deteriorating"], ROLES["stable"]
    assert any("NEWS2 early-warning alert: HIGH" in a and det in a for a in alerts), alerts
    assert any("Possible sepsis" in a and det in a for a in alerts), alerts
    assert not any(stable in a for a in alerts), alerts
    assert all(not Path(f"/proc/{pid}").exists() for pid in services)  # nothing orphaned
