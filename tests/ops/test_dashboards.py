"""Every Grafana dashboard under deploy/grafana/dashboards checked: each panel's query parsed by Prometheus's own
promtool, and every metric, label and label value it selects checked against what the four services really
expose on /metrics (started in-process, one idea through them), or against a recording rule of rules.yml. A panel
whose query names a metric or label no service has can never show data; these tests name it."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.analytics.app import create_app as analytics_app
from services.analytics.settings import AnalyticsSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.notifications.app import create_app as notifications_app
from services.notifications.settings import NotificationsSettings
from services.routing.app import create_app as routing_app
from services.routing.settings import RoutingSettings
from tests.ops.conftest import DEPLOY
from tests.ops.test_metrics import IDEA, samples
from tests.support.apps import running
from tests.support.identity import ANNA, bearer
from tests.support.kafka import eventually

pytestmark = pytest.mark.ops

DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
RULES = DEPLOY / "prometheus" / "rules.yml"
TARGET_LABELS = {"job", "instance"}
"""Labels Prometheus adds to every scraped series (the scrape configuration's job and the target)."""
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\d[\w.]*|([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(|\{[^}]*\})?|\{([^}]*)\}|\S')


def panels(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    found = []
    for panel in items:
        found.append(panel)
        found += panels(panel.get("panels", []))
    return found


def queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) of every Prometheus target of every dashboard."""
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((path.name, panel.get("title", f"panel {panel.get('id')}"), target["expr"]))
    return found


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """The series selectors of a PromQL expression: (metric name, [(label, operator, value)]). Functions,
    aggregations, keywords, grouping labels, ranges and numbers are not selectors."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    found = []
    for match in TOKEN.finditer(expr):
        name, after, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None:  # {__name__="..."} or a selector without a name
            matchers = matchers_of(bare)
            names = [v for label, op, v in matchers if label == "__name__" and op == "="]
            found.append((names[0] if names else "", [m for m in matchers if m[0] != "__name__"]))
        elif name and name not in KEYWORDS and after != "(" and not re.fullmatch(r"(?i)inf|nan", name):
            found.append((name, matchers_of(after or "")))
    return found


def matchers_of(text: str) -> list[tuple[str, str, str]]:
    """The label matchers of a selector's braces, their values unescaped as PromQL reads its strings."""
    return [(label, op, re.sub(r"\\(.)", r"\1", value)) for label, op, value in MATCHER.findall(text)]


def recorded() -> dict[str, str]:
    """The recording rules of rules.yml: recorded name -> expression."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"]: rule["expr"] for group in groups for rule in group["rules"] if "record" in rule}


def test_the_selector_parser_finds_metrics_and_matchers_only():
    expr = (
        'histogram_quantile(0.95, sum by (app_name, le) (rate(x_bucket{job=~"a|b", le!="+Inf"}[5m]))) '
        '/ on (job) group_left up or vector(0) and kiruna:lag:sum{topic="t"} offset 5m'
    )
    assert selectors(expr) == [
        ("x_bucket", [("job", "=~", "a|b"), ("le", "!=", "+Inf")]),
        ("up", []),
        ("kiruna:lag:sum", [("topic", "=", "t")]),
    ]


def test_every_panel_query_is_valid_promql(promtool, tmp_path: Path):
    """promtool (no `promql` subcommand in Debian's 2.42) parses each query as a recording rule's expression."""
    found = queries()
    assert DASHBOARDS and len(found) >= 12, "no dashboard or too few queries under deploy/grafana/dashboards"
    rules = {"groups": [{"name": "dashboards", "rules": []}]}
    for i, (_, _, expr) in enumerate(found):
        rules["groups"][0]["rules"].append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    index = "\n".join(f"  query_{i}: {file} / {title}: {expr}" for i, (file, title, expr) in enumerate(found))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nthe queries:\n{index}"


class Exposed:
    """The series the services expose: per sample name, its label names and the values seen of each label."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.labels: dict[str, dict[str, set[str]]] = {}
        for text in texts.values():
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    _, _, family, kind = line.split()
                    suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
                    for suffix in suffixes:
                        self.labels.setdefault(family + suffix, {})
            for name, labels, _ in samples(text):
                seen = self.labels.setdefault(name, {})
                for label, value in labels.items():
                    seen.setdefault(label, set()).add(value)

    def problems(self, name: str, matchers: list[tuple[str, str, str]], rules: dict[str, str]) -> list[str]:
        if name in rules:  # a recorded series: what its own expression reads must be exposed
            return [p for inner, m in selectors(rules[name]) for p in self.problems(inner, m, rules)] + [
                f"{name} has no label {label}"
                for label, _, _ in matchers
                if not re.search(rf"\b{label}\b", rules[name]) and label not in TARGET_LABELS
            ]
        if name == "up":
            return [f"up has no label {label}" for label, _, _ in matchers if label not in TARGET_LABELS]
        if name not in self.labels:
            return [f"no service exposes {name or 'a series without a name'}"]
        seen = self.labels[name]
        problems = []
        for label, op, value in matchers:
            if label in TARGET_LABELS or not seen:  # no sample yet (nothing happened): its labels are unknown
                continue
            if label not in seen:
                problems.append(f"{name} has no label {label} (it has {sorted(seen)})")
            elif op == "=" and value not in seen[label]:
                problems.append(f"{name}{{{label}={value!r}}} matches nothing (seen: {sorted(seen[label])})")
            elif op == "=~" and not any(re.fullmatch(value, v) for v in seen[label]):
                problems.append(f"{name}{{{label}=~{value!r}}} matches nothing (seen: {sorted(seen[label])})")
        return problems


@pytest.mark.kafka
async def test_every_panel_and_rule_reads_metrics_the_services_expose(service_settings, topics, monkeypatch):
    monkeypatch.setenv("CONSUMER_LAG_INTERVAL_S", "0.5")
    async with (
        running(intake_app(service_settings(IntakeSettings))) as intake,
        running(routing_app(service_settings(RoutingSettings))) as routing,
        running(notifications_app(service_settings(NotificationsSettings))) as notifications,
        running(analytics_app(service_settings(AnalyticsSettings, metrics_interval_s=0.5))) as analytics,
    ):
        response = await intake.post("/api/v1/ideas", json=IDEA, headers=bearer(ANNA))
        assert response.status_code == 202, response.text
        idea_id = response.json()["idea_id"]
        clients = {"intake": intake, "routing": routing, "notifications": notifications, "analytics": analytics}

        async def handled_and_measured():
            answer = await analytics.get(f"/api/v1/ideas/{idea_id}")
            if answer.status_code != 200 or answer.json()["state"] != "routed":
                return None
            texts = {name: (await client.get("/metrics")).text for name, client in clients.items()}
            names = {n for t in texts.values() for n, _, _ in samples(t)}
            needed = {"kiruna_consumer_lag_messages", "kiruna_analytics_response_targets_missed"}
            return texts if needed <= names else None

        texts = await eventually(handled_and_measured, timeout=40)

    exposed = Exposed(texts)
    rules = recorded()
    problems = [
        f"{file} / {title}: {problem}"
        for file, title, expr in queries()
        for name, matchers in selectors(expr)
        for problem in exposed.problems(name, matchers, rules)
    ]
    alerting = [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule
    ]
    problems += [
        f"rules.yml / {rule['alert']}: {problem}"
        for rule in alerting
        for name, matchers in selectors(rule["expr"])
        for problem in exposed.problems(name, matchers, rules)
    ]
    assert not problems, "queries that can never show data:\n" + "\n".join(problems)
