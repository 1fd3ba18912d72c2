"""deploy/prometheus/alerts.yml and deploy/grafana/pool-dashboard.json cannot rot silently: Prometheus's own promtool
(Debian's ``prometheus`` package, installed by ``make test``) checks the rules and runs the unit test of every alert,
and every metric an alert or a panel names is one the pool exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from pool.config import LimitsConfig
from pool.metrics import ChainFigures, PoolMetrics, state_families
from pool.protocol.rate_limits import RateLimits
from pool.store.sqlite import SqlitePoolStore

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "pool-dashboard.json"
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every target
METRIC = re.compile(r"\b(?:pool|process)_[a-z_]+\b")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found is not None, "Debian's prometheus is not installed: run `make prometheus` (apt-get install prometheus)"
    return found


def run_promtool(*args: str) -> str:
    done = subprocess.run(
        [promtool(), *args], cwd=ALERTS.parent, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    assert "SUCCESS" in run_promtool("check", "rules", ALERTS.name)


def test_every_alert_fires_and_stays_quiet_in_its_unit_tests() -> None:
    assert "SUCCESS" in run_promtool("test", "rules", ALERT_TESTS.name)
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")}
    quiet = {case["alertname"] for test in tests for case in test["alert_rule_test"] if not case.get("exp_alerts")}
    # Each alert is shown to fire when it should and to stay quiet when it should not.
    assert alert_names() == firing == quiet


def alert_names() -> set[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"]}


def alert_expressions() -> list[str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


async def exported_names(tmp_path: Path) -> set[str]:
    """The sample names of a pool's GET /metrics, every labelled series made to exist once."""
    metrics = PoolMetrics()
    metrics.partial_answered("TOO_LATE")
    metrics.signage_point_lookup(True)
    metrics.node_rpc("get_blockchain_state", 0.01, ok=False)
    metrics.loops_known(["peak"])
    metrics.loop_ran("peak", 0.1, ok=True, now=1_000)
    metrics.http_request_seconds.labels(endpoint="/partial", method="POST").observe(0.01)
    RateLimits(LimitsConfig(), registry=metrics.registry).refused.labels(limit="per_address").inc()
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        chain = ChainFigures(True, 100, True, True, 5, None)
        metrics.show_state(await state_families(store, chain))
    finally:
        await store.close()
    text = metrics.exposition().decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_every_metric_the_alerts_and_the_dashboard_name_is_exported(tmp_path: Path) -> None:
    exported = await exported_names(tmp_path) | PROMETHEUS_OWN
    for where, expressions in (("alerts.yml", alert_expressions()), ("pool-dashboard.json", dashboard_expressions())):
        named = {name for expr in expressions for name in METRIC.findall(expr)}
        assert named, where
        assert named <= exported, (where, sorted(named - exported))
    assert "pool_build_info" in exported and "process_cpu_seconds_total" in exported
