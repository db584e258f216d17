"""The run's environment, the results table (stdout and docs/benchmarks.md), and the targets check."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parents[1]


def environment(admin_url: str, broker_workers: int, broker_command: list[str]) -> dict[str, Any]:
    async def pg() -> dict[str, str]:
        conn = await asyncpg.connect(admin_url)
        try:
            names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
            return {n: await conn.fetchval(f"SHOW {n}") for n in names}
        finally:
            await conn.close()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "broker_workers": broker_workers,
        "broker_command": " ".join([Path(broker_command[0]).name, *broker_command[1:]]),
        "postgres": asyncio.run(pg()),
        "versions": {p: _version(p) for p in ("jobbroker", "procrastinate", "pgqueuer", "asyncpg", "uvicorn")},
        "git_commit": commit.strip(),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def brief(a: dict[str, Any]) -> str:
    lat = a.get("latency") or {}
    cpu = a.get("cpu", {})
    parts = [f"{a['jobs']} jobs in {a['seconds']:.2f} s = {a['jobs_per_s']:,.0f}/s"]
    if lat:
        parts.append(f"p50 {lat['p50_ms']} ms p99 {lat['p99_ms']} ms")
    parts.append("cpu " + " ".join(f"{k} {v['cpu_pct']}%" for k, v in cpu.items()))
    return "; ".join(parts)


COLUMNS = (
    "scenario",
    "system",
    "jobs/s",
    "vs minimal",
    "vs raw",
    "vs procr.",
    "vs pgq",
    "p50 ms",
    "p99 ms",
    "broker CPU",
    "PG CPU",
    "loadgen CPU",
)


def rows(doc: dict[str, Any]) -> list[list[str]]:
    by_key: dict[str, dict[str, dict[str, Any]]] = {}
    for r in doc["results"]:
        by_key.setdefault(r["key"], {})[r["system"]] = r["median"]
    out = []
    for r in doc["results"]:
        m, peers = r["median"], by_key[r["key"]]
        lat = m.get("latency") or {}
        cpu = m.get("cpu", {})

        def ratio(other: str, m: dict[str, Any] = m, peers: dict[str, Any] = peers, r: dict[str, Any] = r) -> str:
            if r["system"] not in ("jobbroker", "sdk") or other not in peers or not peers[other]["jobs_per_s"]:
                return ""
            return f"{m['jobs_per_s'] / peers[other]['jobs_per_s']:.2f}x"

        out.append(
            [
                r["title"] if r is next(x for x in doc["results"] if x["key"] == r["key"]) else "",
                r["system"],
                f"{m['jobs_per_s']:,.0f}",
                ratio("minimal"),
                ratio("raw"),
                ratio("procrastinate"),
                ratio("pgqueuer"),
                str(lat.get("p50_ms", "")),
                str(lat.get("p99_ms", "")),
                *(f"{cpu[g]['cpu_pct']:.0f}%" if g in cpu else "" for g in ("broker", "postgres", "loadgen")),
            ]
        )
    return out


def table(doc: dict[str, Any]) -> str:
    body = rows(doc)
    widths = [max(len(x) for x in col) for col in zip(COLUMNS, *body, strict=True)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    out = [line(COLUMNS), line(["-" * w for w in widths]), *(line(r) for r in body)]
    out += ["", *targets(doc)]
    return "\n".join(out)


def _jps(doc: dict[str, Any], key: str, system: str) -> float | None:
    for r in doc["results"]:
        if r["key"] == key and r["system"] == system:
            return r["median"]["jobs_per_s"]
    return None


def _median(doc: dict[str, Any], key: str, system: str) -> dict[str, Any] | None:
    for r in doc["results"]:
        if r["key"] == key and r["system"] == system:
            return r["median"]
    return None


def _variants(doc: dict[str, Any], key: str) -> list[tuple[str, dict[str, Any]]]:
    return [(r["system"], r["median"]) for r in doc["results"] if r["key"] == key]


def targets(doc: dict[str, Any]) -> list[str]:
    """Each target this run measured, met or not, with its figures: throughput against the
    minimal-statement ceiling (and, for reference, the broker's own statements issued raw), wake
    latency, the no-cliff ratios, memory over the soak."""
    out = []
    for key, share in (("drain", 0.5), ("steady", 0.5), ("unbatched", 0.8)):
        jb, least, raw = (_jps(doc, key, s) for s in ("jobbroker", "minimal", "raw"))
        if jb and least:
            text = f"{key}: jobbroker {jb:,.0f}/s = {jb / least:.2f}x the minimal ceiling {least:,.0f}/s"
            text += f" (target >= {share}x)"
            if raw:
                text += f"; {jb / raw:.2f}x its own statements raw ({raw:,.0f}/s)"
            out.append(_mark(jb >= share * least, text))
        for peer in ("procrastinate", "pgqueuer"):
            other = _jps(doc, key, peer)
            if jb and other:
                out.append(f"{key}: jobbroker {jb:,.0f}/s vs {peer} {other:,.0f}/s ({jb / other:.2f}x)")
    wake = _median(doc, "wake", "jobbroker")
    if wake and wake.get("latency"):
        lat = wake["latency"]
        ok = lat["p50_ms"] <= 3 and lat["p99_ms"] <= 15
        out.append(_mark(ok, f"wake: p50 {lat['p50_ms']} ms (target <= 3), p99 {lat['p99_ms']} ms (target <= 15)"))
    out += _cliff(doc)
    for r in doc["results"]:
        if r["key"] == "soak":
            series = r["median"].get("rss_mb_series") or []
            start, end = (series[0][1], series[-1][1]) if series else r["median"]["rss_mb"]
            out.append(f"soak: broker RSS {start} MB at start, {end} MB at end ({(end - start) / start:+.1%})")
    return out


def _cliff(doc: dict[str, Any]) -> list[str]:
    """Each variant of a no-cliff scenario against its first (the plain queue)."""
    out = []
    empty = _variants(doc, "cliff_empty")
    if len(empty) > 1:
        (base_name, base), *others = empty
        for name, m in others:
            ratio = m["latency"]["p50_ms"] / base["latency"]["p50_ms"]
            text = f"empty lease, {name}: p50 {m['latency']['p50_ms']} ms = {ratio:.2f}x the {base_name}'s"
            out.append(_mark(ratio <= 1.5, text + f" {base['latency']['p50_ms']} ms (target <= 1.5x)"))
    for key, what in (("cliff_delayed", "drain"), ("cliff_backlog", "drain")):
        found = _variants(doc, key)
        if len(found) < 2:
            continue
        (base_name, base), *others = found
        for name, m in others:
            ratio = m["jobs_per_s"] / base["jobs_per_s"]
            floor = 0.9
            text = f"{what} {name}: {m['jobs_per_s']:,.0f}/s = {ratio:.2f}x {base_name} {base['jobs_per_s']:,.0f}/s"
            out.append(_mark(ratio >= floor, text + f" (target >= {floor}x)"))
            if key == "cliff_backlog" and m.get("latency") and base.get("latency"):
                lat = m["latency"]["p50_ms"] / base["latency"]["p50_ms"]
                text = f"lease {name}: p50 {m['latency']['p50_ms']} ms = {lat:.2f}x {base_name}"
                out.append(_mark(lat <= 1.1, text + f" {base['latency']['p50_ms']} ms (target <= 1.1x)"))
    return out


def _mark(ok: bool, text: str) -> str:
    return f"[{'met' if ok else 'NOT MET'}] {text}"


def markdown(results_dir: Path) -> str:
    """docs/benchmarks.md from the latest full run (and the latest soak run, if any)."""
    latest = {kind: _latest(results_dir, kind) for kind in ("full", "soak", "quick")}
    # A quick run is shown only while it is newer than the latest full run (a smoke test's figures,
    # until a full run replaces them).
    if latest["quick"] is not None and latest["full"] is not None and latest["quick"].name < latest["full"].name:
        latest["quick"] = None
    parts = [(REPO / "bench" / "README.md").read_text().rstrip(), ""]
    for kind, path in latest.items():
        if path is None:
            continue
        doc = json.loads(path.read_text())
        env = doc["environment"]
        parts += [
            f"## Latest {kind} run: `{path.name}`",
            "",
            f"Command: `{doc['command']}` (commit {env['git_commit']}, broker `{_broker(env)}`, "
            f"{env['cpus']} cores, PostgreSQL {env['postgres']['server_version']} "
            f"with synchronous_commit={env['postgres']['synchronous_commit']}; load average "
            f"{_load(env['loadavg_start'])} at start, {_load(env['loadavg_end'])} at end; "
            f"median of {doc['runs']} run(s)).",
            "",
            "| " + " | ".join(COLUMNS) + " |",
            "|" + "---|" * len(COLUMNS),
            *("| " + " | ".join(r) + " |" for r in rows(doc)),
            "",
            *(f"- {t}" for t in targets(doc)),
            "",
        ]
    notes = REPO / "bench" / "NOTES.md"
    if notes.exists():
        parts += [notes.read_text().rstrip(), ""]
    return "\n".join(parts)


def _broker(env: dict[str, Any]) -> str:
    """How the run started the broker; runs before `broker_command` was recorded passed --workers."""
    command = env.get("broker_command") or f"jobbroker serve --workers {env['broker_workers']}"
    return f"{command}, {env['broker_workers']} processes"


def _load(avg: list[float]) -> str:
    return "/".join(f"{x:.2f}" for x in avg)


def _latest(results_dir: Path, kind: str) -> Path | None:
    found = sorted(results_dir.glob(f"*-{kind}.json"))
    return found[-1] if found else None
