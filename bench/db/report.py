#!/usr/bin/env python3
"""Markdown report of bench/db.sh from its records (bench/out/db.jsonl).

Records: measured runs (tool, phase, round, wall_s, user_s, sys_s, max_rss_mb,
source_cpu_s, target_cpu_s, load_before, exit_code), row-count checks
({check, round, ok}), sizes ({size, round, bytes}), delta databases
({delta_db, ...}) and one {meta: ...}.
"""
import datetime
import json
import os
import re
import statistics
import sys

recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
logs = sys.argv[2] if len(sys.argv) > 2 else ""
meta = next((r["meta"] for r in recs if "meta" in r), {})
runs = [r for r in recs if "tool" in r]
checks = [r for r in recs if "check" in r]
sizes = [r for r in recs if "size" in r]
deltas = {r["delta_db"]: r for r in recs if "delta_db" in r}


def by_round(tool, phase):
    return {r["round"]: r for r in runs if r["tool"] == tool and r["phase"] == phase}


def combine(parts):
    """Per round, the sum of several measured runs (all must have succeeded)."""
    rounds = None
    for p in parts:
        ks = {k for k, r in by_round(*p).items() if r["exit_code"] == 0}
        rounds = ks if rounds is None else rounds & ks
    out = {}
    for k in sorted(rounds or []):
        rs = [by_round(*p)[k] for p in parts]
        out[k] = {
            "wall_s": sum(r["wall_s"] for r in rs),
            "cpu_s": sum(r["user_s"] + r["sys_s"] for r in rs),
            "source_cpu_s": sum(r.get("source_cpu_s", 0) for r in rs),
            "target_cpu_s": sum(r.get("target_cpu_s", 0) for r in rs),
            "max_rss_mb": max(r["max_rss_mb"] for r in rs),
            "load_before": rs[0].get("load_before", ""),
            "exit_code": 0,
        }
    return out


def single(tool, phase):
    out = {}
    for k, r in by_round(tool, phase).items():
        out[k] = dict(r, cpu_s=r["user_s"] + r["sys_s"])
    return out


def med(rows, key):
    vals = [r[key] for r in rows.values() if r["exit_code"] == 0]
    return statistics.median(vals) if vals else None


def fmt(v, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f}"


def check_of(label_prefix):
    cs = [c for c in checks if c["check"].startswith(label_prefix)]
    if not cs:
        return "–"
    return "ok" if all(c["ok"] for c in cs) else "**MISMATCH**"


def failed(rows):
    bad = [r["exit_code"] for r in rows.values() if r["exit_code"] != 0]
    return f" (**failed**, exit {bad[0]})" if bad else ""


jobs = meta.get("jobs", "?")
nruns = meta.get("runs", 1)
gb = meta.get("db_bytes", 0) / 2**30
counts = dict(l.split("|") for l in meta.get("counts", "").splitlines() if "|" in l)
print(f"Database benchmark (bench/db.sh), {meta.get('started', '?')}, scale {meta.get('scale')} "
      f"(database `{meta.get('db')}`, pg_database_size {gb:.2f} GiB): "
      + ", ".join(f"{k.split('.')[-1]} {int(v):,}" for k, v in counts.items()) + " rows.")
print(f"PostgreSQL {meta.get('pg')} (source and target clusters on this machine), {meta.get('pg_dump')}, "
      f"pgcopydb {meta.get('pgcopydb')}, kwickmig {meta.get('kwickmig')}. "
      f"N = {jobs} jobs everywhere, split threshold {meta.get('split')}, "
      f"{nruns} round(s), median wall times. {meta.get('cores')} cores; load average "
      f"{meta.get('load_start')} at the start, {meta.get('load_end')} at the end.\n")

ROWS = [
    ("kwickmig db copy", single("kwickmig", "copy"), "kwickmig db copy"),
    ("pg_dump -Fd", single("pg_dump", "dump"), None),
    ("pg_restore", single("pg_restore", "restore"), None),
    ("vacuumdb --analyze-only", single("vacuumdb", "analyze"), None),
    ("dump + restore", combine([("pg_dump", "dump"), ("pg_restore", "restore")]), None),
    ("dump + restore + analyze", combine([("pg_dump", "dump"), ("pg_restore", "restore"), ("vacuumdb", "analyze")]), "pg_dump"),
    ("pgcopydb clone", single("pgcopydb", "clone"), "pgcopydb"),
    ("COPY floor (receipts only, 1 stream)", single("floor", "copy"), "COPY floor"),
    ("kwickmig db export", single("kwickmig", "export"), None),
    ("kwickmig db import", single("kwickmig", "import"), None),
    ("export + import", combine([("kwickmig", "export"), ("kwickmig", "import")]), "kwickmig db export"),
]
print("| run | wall s | client CPU s | source CPU s | target CPU s | all CPU s | client peak RSS MB | load before | row counts |")
print("|---|---:|---:|---:|---:|---:|---:|---|---|")
W = {}
for name, rows, chk in ROWS:
    if not rows:
        continue
    W[name] = med(rows, "wall_s")
    loads = "; ".join(rows[k].get("load_before", "") for k in sorted(rows))
    for r in rows.values():
        r["all_cpu_s"] = r["cpu_s"] + r.get("source_cpu_s", 0) + r.get("target_cpu_s", 0)
    print(f"| {name}{failed(rows)} | {fmt(W[name], 2)} | {fmt(med(rows, 'cpu_s'))} | {fmt(med(rows, 'source_cpu_s'))} | "
          f"{fmt(med(rows, 'target_cpu_s'))} | {fmt(med(rows, 'all_cpu_s'))} | {fmt(med(rows, 'max_rss_mb'), 0)} | {loads} | "
          f"{check_of(chk) if chk else ''} |")
for s in ("dump", "export"):
    b = [x["bytes"] for x in sizes if x["size"] == s]
    if b:
        print(f"\n{'pg_dump -Fd directory' if s == 'dump' else 'kwickmig db export directory'}: {statistics.median(b) / 2**30:.2f} GiB", end="")
print("\n")


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


kw, pc = W.get("kwickmig db copy"), W.get("pgcopydb clone")
dr, ei, fl = W.get("dump + restore + analyze"), W.get("export + import"), W.get("COPY floor (receipts only, 1 stream)")
print("| comparison (wall time) | ratio | target | met |")
print("|---|---:|---|---|")
for label, v, target, lim in [
    ("kwickmig db copy / pgcopydb clone", ratio(kw, pc), "≤ 0.8×", 0.8),
    ("kwickmig db copy / (pg_dump + pg_restore + analyze)", ratio(kw, dr), "≤ 0.4×", 0.4),
    ("(kwickmig db export + import) / (pg_dump + pg_restore + analyze)", ratio(ei, dr), "≤ 0.8×", 0.8),
    ("kwickmig db copy / COPY floor (receipts, one stream)", ratio(kw, fl), "reference", None),
    ("pgcopydb clone / COPY floor", ratio(pc, fl), "reference", None),
]:
    met = "–" if lim is None or v is None else ("yes" if v <= lim else "**no**")
    print(f"| {label} | {fmt(v, 2)}× | {target} | {met} |")

if deltas or any(r["phase"].startswith("final-delta") for r in runs):
    print(f"\nFinal delta: {meta.get('changes', 0):,} row changes after `db capture install` (--allow-no-key) and "
          f"`db copy`, on a copy of the generated database (CREATE DATABASE … TEMPLATE):\n")
    print("| database | receipts | size GiB | db copy (capture installed) s | apply changes (psql) s | "
          "final-delta s | target CPU s | 2nd final-delta s | rows + hashes | target < 10 s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for label in ("big", "small"):
        d = deltas.get(label, {})
        cp = single("kwickmig", f"copy-with-capture-{label}")
        ch = single("psql", f"changes-{label}")
        fd = single("kwickmig", f"final-delta-{label}")
        fd2 = single("kwickmig", f"final-delta-again-{label}")
        if not (cp or fd):
            continue
        v = med(fd, "wall_s")
        met = "–" if v is None else ("yes" if v < 10 else "**no**")
        print(f"| {label} (scale {d.get('scale', '?')}) | {d.get('receipts', 0):,} | {d.get('bytes', 0) / 2**30:.2f} | "
              f"{fmt(med(cp, 'wall_s'), 2)}{failed(cp)} | {fmt(med(ch, 'wall_s'), 2)}{failed(ch)} | "
              f"{fmt(v, 2)}{failed(fd)} | {fmt(med(fd, 'target_cpu_s'))} | {fmt(med(fd2, 'wall_s'), 2)}{failed(fd2)} | "
              f"{check_of(f'db copy + final-delta ({label})')} | {met} |")

bad = [c for c in checks if not c["ok"]]
if bad:
    print("\n**Row-count mismatches:** " + "; ".join(f"{c['check']} (round {c['round']})" for c in bad))
hi = [r for r in runs if r.get("load_before") and float(r["load_before"].split()[0]) > 1.5 * (meta.get("cores") or 1)]
if hi:
    print(f"\nWarning: {len(hi)} of {len(runs)} runs started with a 1-minute load above 1.5 per core: "
          "wall-time ratios depend on what else ran; CPU seconds are steadier.")


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def phases(name):
    """Where the time of one kwickmig db copy/import run went, from its log and report."""
    log, rep = os.path.join(logs, name + ".log"), os.path.join(logs, name + ".json")
    if not (os.path.exists(log) and os.path.exists(rep)):
        return None
    r = json.load(open(rep))
    t0, t9 = ts(r["started"]), ts(r["finished"])
    schema = data = post = None
    tables = []
    for line in open(log):
        m = re.match(r'time=(\S+) level=\w+ msg="([^"]*)"(.*)', line)
        if not m:
            continue
        t, msg, rest = ts(m.group(1)), m.group(2), m.group(3)
        if msg.startswith("schema created"):
            schema = t
        elif msg in ("copy table", "import table"):
            data = t
            kv = dict(re.findall(r'(\w+)=(\S+)', rest))
            tables.append((float(kv.get("seconds", 0)), f"{kv.get('table', '?').split('.')[-1]} {kv.get('seconds', '?')} s in {kv.get('parts', '?')} part(s)"))
        elif msg.startswith("post-data built"):
            post = t
    if not (schema and data and post):
        return None
    d = lambda a, b: f"{(b - a).total_seconds():.1f}"
    return (f"pre-data {d(t0, schema)} s, data {d(schema, data)} s ({', '.join(t for _, t in sorted(tables, reverse=True)[:3])}), "
            f"post-data after the data {d(data, post)} s, then sequences + ANALYZE + bookkeeping {d(post, t9)} s "
            f"(total {d(t0, t9)} s)")


if logs:
    lines = []
    for r in sorted(runs, key=lambda r: (r["phase"], r["round"])):
        if r["tool"] == "kwickmig" and (r["phase"] in ("copy", "import") or r["phase"].startswith("copy-with-capture")):
            p = phases(f"kwickmig-{r['phase']}-r{r['round']}")
            if p:
                lines.append(f"- {r['phase']} (round {r['round']}): {p}")
    if lines:
        print("\nWhere kwickmig's time went (from its log; data = table copies, slowest first):\n")
        print("\n".join(lines))
