"""deploy/ and the Dockerfile, checked offline by tools nobody on the project wrote: promtool
(Debian's prometheus package), kubernetes-validate, checkov and hadolint (the .venv-tools venv,
`make tools`). A check whose tool is missing skips, naming it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yaml"
RENDERED = sorted((DEPLOY / "kubernetes" / "rendered").glob("*.yaml"))
TOOLS_BIN = REPO / ".venv-tools" / "bin"
CRD_KINDS = {"Cluster", "Pooler", "ServiceMonitor", "PrometheusRule"}


def tool(name: str) -> str:
    for candidate in (TOOLS_BIN / name, shutil.which(name)):
        if candidate and Path(candidate).exists():
            return str(candidate)
    hint = "apt-get install prometheus" if name == "promtool" else "make tools"
    pytest.skip(f"{name} is not installed ({hint})")


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_promtool_checks_the_rules_and_their_prometheusrule(tmp_path: Path) -> None:
    promtool = tool("promtool")
    done = run(promtool, "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    [rule] = [d for d in documents(RENDERED[0]) if d["kind"] == "PrometheusRule"]
    extracted = tmp_path / "prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump(rule["spec"]))
    done = run(promtool, "check", "rules", str(extracted))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    done = run(tool("promtool"), "test", "rules", "rules.test.yaml", cwd=DEPLOY / "prometheus")
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    tests = yaml.safe_load((DEPLOY / "prometheus" / "rules.test.yaml").read_text())["tests"]
    tested = {a["alertname"] for t in tests for a in t["alert_rule_test"] if a.get("exp_alerts")}
    assert alerts == tested


def test_the_rendered_manifests_and_the_prometheusrule_are_current() -> None:
    """The committed render is what the overlays make (checked where kubectl or kustomize exists;
    the PrometheusRule always)."""
    done = run(sys.executable, "-m", "tools.deploy_render", "--check")
    assert done.returncode == 0, done.stderr
    if shutil.which("kubectl") is None and shutil.which("kustomize") is None:
        pytest.skip("no kubectl or kustomize to render the overlays; the committed render was checked as it is")


@pytest.mark.parametrize("manifest", RENDERED, ids=lambda p: p.stem)
def test_kubernetes_validate_strict_passes_every_resource(manifest: Path) -> None:
    done = run(tool("kubernetes-validate"), "--strict", str(manifest))
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = [d["kind"] for d in documents(manifest)]
    passed = re.findall(r"passed for resource (\w+)/", done.stdout + done.stderr)
    # Every resource of Kubernetes itself passed; the operators' kinds (CRDs) have no schema here.
    assert sorted(passed) == sorted(k.lower() for k in kinds if k not in CRD_KINDS)


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, dict[str, Any]]:
    """One checkov run over the rendered manifests and the Dockerfile: its results by framework."""
    files = [str(p) for p in [*RENDERED, REPO / "Dockerfile"]]
    argv = [tool("checkov"), "-f", *files, "--framework", "kubernetes", "dockerfile"]
    done = run(*argv, "--output", "json", "--compact", "--skip-download")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(done.stdout)
    return {r["check_type"]: r for r in (report if isinstance(report, list) else [report])}


def test_checkov_finds_no_failure_in_the_manifests_and_every_skip_is_justified(checkov_report) -> None:
    summary = checkov_report["kubernetes"]["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 100
    for manifest in RENDERED:
        for doc in documents(manifest):
            for key, value in (doc["metadata"].get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check, _, reason = value.partition("=")
                    assert re.fullmatch(r"CKV2?_K8S_\d+", check) and len(reason) > 40, value


def test_checkov_finds_no_failure_in_the_dockerfile(checkov_report) -> None:
    summary = checkov_report["dockerfile"]["summary"]
    assert summary["failed"] == 0 and summary["skipped"] == 0 and summary["passed"] > 20


def test_hadolint_reports_nothing_at_warning_level() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "warning", "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_deployment_leaves_its_replica_count_to_the_hpa_and_listens_directly() -> None:
    for manifest in RENDERED:
        docs = {(d["kind"], d["metadata"]["name"]): d for d in documents(manifest)}
        deployment = docs["Deployment", "jobbroker"]
        assert "replicas" not in deployment["spec"]
        assert docs["HorizontalPodAutoscaler", "jobbroker"]["spec"]["scaleTargetRef"]["name"] == "jobbroker"
        env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert "@jobbroker-db-pooler-rw:" in env["JOBBROKER_DATABASE_URL"]
        assert "@jobbroker-db-rw:" in env["JOBBROKER_DB__LISTEN_URL"]
        assert env["JOBBROKER_DB__STATEMENT_CACHE_SIZE"] == "0"
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), image
        kinds = {kind for kind, _ in docs}
        assert {"PodDisruptionBudget", "NetworkPolicy", "ServiceAccount", "Secret", "Job", "Pooler", "Cluster"} <= kinds
    production = {
        (d["kind"], d["metadata"]["name"]): d for d in documents(DEPLOY / "kubernetes/rendered/production.yaml")
    }
    assert production["Cluster", "jobbroker-db"]["spec"]["postgresql"]["synchronous"]["number"] >= 1


def metric_names() -> set[str]:
    source = (REPO / "service" / "jobbroker" / "metrics.py").read_text()
    names = set(re.findall(r'"(jobbroker_[a-z_]+)"', source))
    # The HTTP metrics are the instrumentator's, under the jobbroker namespace.
    return names | {"jobbroker_http_requests_total", "jobbroker_http_request_duration_seconds"}


def used_metrics(text: str) -> set[str]:
    found = set(re.findall(r"\b(jobbroker_[a-z_]+)", text))
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in found}


def test_the_dashboard_and_the_alerts_use_only_metrics_the_broker_exports() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "jobbroker.json").read_text())
    exprs = json.dumps([t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])])
    known = metric_names()
    assert used_metrics(exprs) <= known, used_metrics(exprs) - known
    assert used_metrics(RULES.read_text()) <= known, used_metrics(RULES.read_text()) - known
    titles = " ".join(p["title"] for p in dashboard["panels"] if p["type"] == "row").lower()
    for topic in ("queues", "throughput", "failures", "latency", "dead-letter", "push"):
        assert topic in titles


def test_the_image_context_lets_in_only_what_the_dockerfile_copies() -> None:
    lines = [x for x in (REPO / ".dockerignore").read_text().splitlines() if x and not x.startswith("#")]
    assert lines[0] == "*"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    copied = set()
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY") and "--from" not in line:
            copied |= {p.rstrip("/").removeprefix("./") for p in line.split()[1:-1]}
    assert copied == allowed
    for heavy in (".venv", ".git", "bench", ".jobbroker"):
        assert heavy not in allowed
