"""Reads a /metrics body on stdin, parses it with the Prometheus project's
own OpenMetrics parser (strict: it refuses what Prometheus would), checks
the naming rules, and prints every sample as JSON: {"name{labels}": value}.
Exits non-zero with the reason on any violation."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = sys.stdin.read()
samples = {}
problems = []
for family in text_string_to_metric_families(text):
    if not family.name.startswith("tandem_"):
        problems.append(f"{family.name}: not under the tandem_ prefix")
    if family.unit and not family.name.endswith("_" + family.unit):
        problems.append(f"{family.name}: unit {family.unit} is not its suffix")
    for s in family.samples:
        if family.type == "counter" and not (s.name.endswith("_total") or s.name.endswith("_created")):
            problems.append(f"{s.name}: a counter sample without _total")
        for label in s.labels:
            if label in ("user", "userId", "user_id", "room", "roomId", "room_id", "socket", "sid"):
                problems.append(f"{s.name}: a per-user or per-room label {label}")
        key = s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else "")
        samples[key] = s.value
if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
json.dump(samples, sys.stdout)
