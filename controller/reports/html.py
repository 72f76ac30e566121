"""Server-rendered HTML of report documents and of the index of recent verdicts.

Jinja2 with autoescape on for every template: each name, string and message that came from a model
(file names, pickle strings, config values) is HTML-escaped. The pages are self-contained (inline
CSS, no external assets, no JavaScript) so they open anywhere, including air-gapped networks.
The templates are mlgate's own; nothing from a model is ever used as a template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from jinja2 import DictLoader, Environment, select_autoescape

SEVERITIES = ("critical", "high", "medium", "low", "info")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;max-width:75rem;color:#1b1f24}
h1{font-size:1.4rem;margin:.2rem 0} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:700;color:#fff}
.approved{background:#1a7f37} .quarantined{background:#cf222e} .unsigned,.none{background:#6e7781}
.sev-critical{color:#a40e26;font-weight:700} .sev-high{color:#cf222e} .sev-medium{color:#9a6700}
table{border-collapse:collapse;width:100%;margin:.5rem 0} td,th{border:1px solid #d0d7de;padding:.3rem .5rem;
text-align:left;vertical-align:top} th{background:#f6f8fa} code,pre{font-family:ui-monospace,monospace;
font-size:.85rem;white-space:pre-wrap;word-break:break-all} .muted{color:#57606a} ul.chain{list-style:none;
padding-left:1.2rem;border-left:2px solid #d0d7de}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem} dt{font-weight:600}
"""

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{% block title %}mlgate{% endblock %}</title><style>{{ style }}</style></head>
<body>{% block body %}{% endblock %}</body></html>
"""

_DEP = """{% macro dep_tree(deps) %}<ul class="chain">
{% for d in deps %}<li class="dependency">
<span class="badge {{ d.verdict or 'none' }}">{{ d.verdict or 'unresolved' }}</span>
<code>{{ d.kind }}</code> <strong>{{ d.ref }}</strong>
{% if d.revision %}<span class="muted">@{{ d.revision }}</span>{% endif %}
{% if d.resolved_to %}<span class="muted"> &rarr; {{ d.resolved_to }}</span>{% endif %}
<div class="muted">named at <code>{{ d.location }}</code>{% if d.field %} ({{ d.field }}){% endif %}
{% if d.digest %}; digest <code>{{ d.digest }}</code>{% endif %}</div>
{% if d.reason %}<div>{{ d.reason }}</div>{% endif %}
{% for f in (d.findings or []) if not f.suppressed and f.severity in ('critical', 'high') %}
<div class="sev-{{ f.severity }}">{{ f.severity }} {{ f.rule }} at <code>{{ f.location }}</code>: {{ f.message }}</div>
{% endfor %}
{% if d.dependencies %}{{ dep_tree(d.dependencies) }}{% endif %}
</li>{% endfor %}</ul>{% endmacro %}"""

_REPORT = """{% extends "base.html" %}{% from "dep.html" import dep_tree %}
{% block title %}mlgate: {{ verdict }} {{ subject.ref }}{% endblock %}
{% block body %}
<p class="muted"><a href="{{ index_url }}">all recent verdicts</a> &middot;
<a href="{{ json_url }}">this report as JSON</a></p>
<h1><span id="verdict" class="badge {{ verdict }}">{{ verdict }}</span> <span id="subject">{{ subject.ref }}</span></h1>
{% if live %}<p id="live">Registry now: <span class="badge {{ live.state }}">{{ live.state }}</span>
{{ live.note }}</p>{% endif %}
<dl>
<dt>source</dt><dd>{{ subject.source }}</dd>
<dt>digest</dt><dd><code id="digest">{{ report.digest }}</code></dd>
<dt>recorded</dt><dd>{{ recorded_at }} by mlgate {{ mlgate_version }}</dd>
<dt>target</dt><dd><code>{{ report.target }}</code></dd>
</dl>
<h2>Why</h2>
<ul id="why">{% for line in why %}<li>{{ line }}</li>{% endfor %}</ul>
<h2>Findings</h2>
{% if not report.findings %}<p>No findings.</p>{% endif %}
{% for sev in severities %}{% set group = report.findings | selectattr("severity", "equalto", sev) | list %}
{% if group %}<h3 class="sev-{{ sev }}">{{ sev }} ({{ group | length }})</h3>
<table class="findings" data-severity="{{ sev }}"><tr><th>rule</th><th>location</th><th>message</th><th>status</th></tr>
{% for f in group %}<tr class="finding">
<td><code>{{ f.rule }}</code></td><td><code>{{ f.location }}</code></td><td>{{ f.message }}</td>
<td>{% if f.suppressed %}accepted: {{ f.suppressed }}{% else %}active{% if f.incomplete %} (content not read){% endif %}
{% if f.accept_with %}<div class="muted">to accept after review:</div>
<code class="accept">{{ f.accept_with }}</code>{% endif %}
{% endif %}</td></tr>{% endfor %}</table>{% endif %}{% endfor %}
<h2>Reviewed exceptions</h2>
{% if not exceptions %}<p>None.</p>{% else %}
<table id="exceptions"><tr><th>id</th><th>rule</th><th>location</th><th>reviewer</th><th>reason</th><th>granted</th>
<th>status</th></tr>
{% for e in exceptions %}<tr><td><code>{{ e.id or e.tag }}</code></td><td><code>{{ e.rule }}</code></td>
<td><code>{{ e.location }}</code></td><td>{{ e.reviewer }}</td><td>{{ e.reason }}</td><td>{{ e.created_at }}</td>
<td>{{ e.status }}{% if e.revoked_at %} ({{ e.revoked_at }} by {{ e.revoked_by }}){% endif %}</td></tr>{% endfor %}
</table>{% endif %}
<h2>Dependency chain</h2>
<div id="dependencies">{% if report.dependencies %}{{ dep_tree(report.dependencies) }}{% else %}
<p>The model names no other model.</p>{% endif %}</div>
<h2>Completeness and budgets</h2>
<dl id="completeness">
<dt>scan</dt><dd>{{ "complete" if report.scan_complete else "INCOMPLETE: part of the model was not read" }}</dd>
<dt>duration</dt><dd>{{ report.duration_s }} s</dd><dt>bytes read</dt><dd>{{ report.bytes_read }}</dd>
<dt>quarantine at</dt><dd>{{ policy.quarantine_at }} and above{{ "; incomplete scans" if policy.quarantine_incomplete
}}{{ "; unresolved dependencies" if policy.quarantine_unresolved }}</dd>
{% for name, value in budgets.items() %}<dt>budget {{ name }}</dt><dd>{{ value }}</dd>{% endfor %}
</dl>
{% endblock %}"""

_INDEX = """{% extends "base.html" %}{% block title %}mlgate: recent verdicts{% endblock %}
{% block body %}<h1>Recent verdicts</h1>
<form method="get" action="{{ index_url }}">
<label>verdict <select name="verdict">{% for v in ("", "approved", "quarantined") %}
<option value="{{ v }}"{{ " selected" if v == verdict }}>{{ v or "any" }}</option>{% endfor %}</select></label>
<label>source <select name="source">{% for s in ("", "mlflow", "s3") %}
<option value="{{ s }}"{{ " selected" if s == source }}>{{ s or "any" }}</option>{% endfor %}</select></label>
<button type="submit">filter</button></form>
<table id="recent"><tr><th>recorded</th><th>verdict</th><th>source</th><th>model</th><th>digest</th>
<th>summary</th></tr>
{% for r in rows %}<tr><td>{{ r.recorded_at }}</td><td><span class="badge {{ r.verdict }}">{{ r.verdict }}</span></td>
<td>{{ r.source }}</td><td><a href="{{ r.url }}">{{ r.ref }}</a></td><td><code>{{ r.digest[:23] }}</code></td>
<td>{{ r.summary }}</td></tr>
{% else %}<tr><td colspan="6">No verdict recorded{{ " with these filters" if verdict or source }} since this
controller started.</td></tr>{% endfor %}</table>
{% endblock %}"""

_ENV = Environment(
    loader=DictLoader({"base.html": _BASE, "dep.html": _DEP, "report.html": _REPORT, "index.html": _INDEX}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_report(
    document: Mapping[str, Any], index_url: str, json_url: str, live: Mapping[str, str] | None = None
) -> str:
    """The HTML page of one report document (``live``: what the registry says now, if looked up)."""
    report = document.get("report") or {}
    return _ENV.get_template("report.html").render(
        style=_STYLE,
        severities=SEVERITIES,
        subject=document.get("subject") or {"ref": report.get("target", ""), "source": ""},
        verdict=document.get("verdict", report.get("verdict", "")),
        why=document.get("why") or [],
        report=_with_defaults(report),
        exceptions=[_exception(e) for e in document.get("exceptions") or []],
        policy=document.get("policy") or {"quarantine_at": "", "quarantine_incomplete": 0, "quarantine_unresolved": 0},
        budgets=document.get("budgets") or {},
        recorded_at=document.get("recorded_at", ""),
        mlgate_version=document.get("mlgate_version", ""),
        index_url=index_url,
        json_url=json_url,
        live=live,
    )


def render_index(rows: Sequence[Mapping[str, str]], index_url: str, verdict: str = "", source: str = "") -> str:
    return _ENV.get_template("index.html").render(
        style=_STYLE, rows=rows, index_url=index_url, verdict=verdict, source=source
    )


def page_path(subject: Mapping[str, str], base: str = "/reports") -> str:
    """The URL path of a subject's report page (names and keys percent-encoded)."""
    if subject.get("source") == "s3":
        return f"{base}/s3/{quote(subject['bucket'], safe='')}/{quote(subject['root'], safe='/')}"
    return f"{base}/mlflow/{quote(subject['name'], safe='')}/{quote(str(subject['version']), safe='')}"


def _with_defaults(report: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(report)
    out.setdefault("findings", [])
    out.setdefault("dependencies", [])
    out["findings"] = [_finding(f) for f in out["findings"]]
    out["dependencies"] = [_dep(d) for d in out["dependencies"]]
    for key, default in (
        ("digest", ""),
        ("target", ""),
        ("scan_complete", False),
        ("duration_s", 0),
        ("bytes_read", 0),
    ):
        out.setdefault(key, default)
    return out


def _exception(raw: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "tag", "rule", "location", "reviewer", "reason", "created_at", "status", "revoked_at", "revoked_by")
    out: dict[str, Any] = dict.fromkeys(keys, "")
    out.update(raw)
    return out


def _finding(raw: Mapping[str, Any]) -> dict[str, Any]:
    out = {"rule": "", "severity": "info", "location": "", "message": "", "suppressed": None, "incomplete": False}
    out["accept_with"] = ""
    out.update(raw)
    return out


def _dep(raw: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ref": "", "kind": "", "verdict": None, "location": "", "field": "", "revision": ""}
    out.update({"resolved_to": "", "digest": "", "reason": "", "findings": [], "dependencies": []})
    out.update(raw)
    out["findings"] = [_finding(f) for f in out["findings"]]
    out["dependencies"] = [_dep(d) for d in out["dependencies"]]
    return out
