"""The Grafana dashboard and Prometheus rules refer only to metrics the code defines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "deploy" / "observability"
# A metric is defined where its name is passed to a prometheus_client constructor.
DEFINED = re.compile(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(carepulse_[a-z0-9_]+)"')
USED = re.compile(r"\b(carepulse_[a-z0-9_]+)")


def defined_metrics() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("shared/src/**/*.py"), *ROOT.glob("services/*/src/**/*.py")]:
        names |= set(DEFINED.findall(path.read_text()))
    # Histograms are queried through their series.
    return names | {f"{n}{s}" for n in names for s in ("_bucket", "_sum", "_count")}


def test_dashboard_panels_query_existing_metrics() -> None:
    dash = json.loads((OBS / "grafana" / "dashboards" / "carepulse.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in USED.findall(e)}
    missing = used - defined_metrics()
    assert not missing, f"dashboard queries metrics no code defines: {sorted(missing)}"
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("ingest rate", "consumer lag", "inference latency", "alerts raised by level"):
        assert topic in titles
    assert {"carepulse_consumer_lag", "carepulse_inference_request_seconds_bucket"} <= used


def test_alert_rules_query_existing_metrics() -> None:
    rules = yaml.safe_load((OBS / "alerts.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m for e in exprs for m in USED.findall(e)}
    assert used and not used - defined_metrics()
