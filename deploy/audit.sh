#!/usr/bin/env bash
# The vulnerability audit of requirements.lock (issue 14, "Hardening"); `make test` runs it before the suite.
#
# pip-audit checks every release pinned in the lock, by its hashes and without resolving anything (--disable-pip),
# against PyPI's advisories (its JSON API, pip-audit's default) or, when PyPI does not answer, OSV (api.osv.dev).
#   - a service answers: any advisory fails the run, naming the package, its version, the advisory and the fixed
#     versions, unless the advisory's ID is listed in deploy/audit-ignore.txt (one ID a line, with `# why`);
#   - neither answers within AUDIT_PROBE_TIMEOUT seconds (5): one line says the audit was skipped and why; exit 0.
# The probe asks each service about a release with known advisories (jinja2 2.4.1), so a service that answers but
# knows nothing (a mirror without advisory data) counts as not answering.
# AUDIT_SERVICE=pypi|osv asks only that one; AUDIT_OSV_URL sends OSV's queries elsewhere (a mirror); AUDIT=0 skips;
# AUDIT_VENV (.venv) and AUDIT_IGNORE name another environment or ignore file.
set -euo pipefail
cd "$(dirname "$0")/.."

LOCK=${LOCK:-requirements.lock}
IGNORE=${AUDIT_IGNORE:-deploy/audit-ignore.txt}
VENV=${AUDIT_VENV:-.venv}
PY=$VENV/bin/python
PIP_AUDIT=$VENV/bin/pip-audit
OSV_URL=${AUDIT_OSV_URL:-https://api.osv.dev/v1/query}
export AUDIT_PROBE_TIMEOUT=${AUDIT_PROBE_TIMEOUT:-5} OSV_URL

if [[ ${AUDIT:-1} == 0 ]]; then echo "audit: skipped (AUDIT=0)"; exit 0; fi
if [[ ! -x $PIP_AUDIT ]]; then echo "audit: skipped: $PIP_AUDIT is missing (make install installs it from $LOCK)"; exit 0; fi

# The advisories accepted on purpose: `ID  # why, who, until when`. A line without its reason is an error.
ignores=()
if [[ -f $IGNORE ]]; then
    ids=$("$PY" - "$IGNORE" <<'EOF'
import re, sys
path = sys.argv[1]
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9_.:-]*)\s+#\s*(\S.*)", line)
    if not m:
        sys.exit(f"{path}:{n}: expected `ADVISORY-ID  # why it is accepted`, got {line!r}")
    print(m.group(1))
EOF
    ) || exit 1
    [[ -n $ids ]] && mapfile -t ignores <<<"$ids"
fi

# Which service answers now? Prints the service's name, or (exit 1) why none does.
if ! service=$("$PY" - "${AUDIT_SERVICE:-}" <<'EOF'
import json, os, sys, urllib.request

timeout = float(os.environ["AUDIT_PROBE_TIMEOUT"])

def ask(request):
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)

def pypi():
    return bool(ask("https://pypi.org/pypi/jinja2/2.4.1/json").get("vulnerabilities"))

def osv():
    query = json.dumps({"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.4.1"}).encode()
    request = urllib.request.Request(os.environ["OSV_URL"], data=query, headers={"content-type": "application/json"})
    return bool(ask(request).get("vulns"))

why = []
for name, probe in (("pypi", pypi), ("osv", osv)):
    if sys.argv[1] and sys.argv[1] != name:
        continue
    try:
        if probe():
            print(name)
            sys.exit(0)
        why.append(f"{name}: answered without advisories")
    except Exception as exc:  # noqa: BLE001 (any failure means: not answering)
        why.append(f"{name}: {getattr(exc, 'reason', None) or exc}")
print("; ".join(why))
sys.exit(1)
EOF
); then
    echo "audit: skipped: no advisory service answered within ${AUDIT_PROBE_TIMEOUT} s ($service)"
    exit 0
fi

out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
args=(-r "$LOCK" --require-hashes --disable-pip --vulnerability-service "$service" --format json --output "$out"
      --progress-spinner off --timeout 15)
[[ $service == osv ]] && args+=(--osv-url "$OSV_URL")
for id in "${ignores[@]}"; do args+=(--ignore-vuln "$id"); done
set +e
"$PIP_AUDIT" "${args[@]}" 2>"$err"
rc=$?
set -e

"$PY" - "$out" "$err" "$rc" "$service" "$LOCK" "${#ignores[@]}" "$IGNORE" <<'EOF'
import json, re, sys
out, err, rc, service, lock, ignored, ignore_file = sys.argv[1:]
errors = open(err, encoding="utf-8", errors="replace").read()
try:
    report = json.load(open(out, encoding="utf-8"))
except (OSError, ValueError):
    report = None
if report is None:
    if re.search(r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries|Temporary failure|timed out", errors):
        last = errors.strip().splitlines()[-1] if errors.strip() else "no answer"
        print(f"audit: skipped: {service} stopped answering during the audit ({last[:200]})")
        sys.exit(0)
    sys.stderr.write(errors)
    sys.exit(f"audit: pip-audit failed (exit {rc}) without a report")
deps = report.get("dependencies", [])
found = [(d, v) for d in deps for v in d.get("vulns", [])]
skipped = [d for d in deps if d.get("skip_reason")]
for d, v in found:
    aliases = ", ".join(a for a in v.get("aliases", []) if a != v["id"])
    fixed = ", ".join(v.get("fix_versions", [])) or "none yet"
    print(f"audit: {d['name']} {d['version']}: {v['id']}" + (f" ({aliases})" if aliases else "") + f"; fixed in: {fixed}")
note = f", {len(skipped)} not found on {service}" if skipped else ""
note += f", {ignored} advisories ignored by {ignore_file}" if ignored != "0" else ""
if found:
    print(f"audit: FAILED: {len(found)} known vulnerabilities in {lock} ({service}{note}). Upgrade (raise the pin, "
          "`make lock`), "
          f"or accept an advisory in {ignore_file} with the reason.")
    sys.exit(1)
print(f"audit: {len(deps)} packages of {lock} checked against {service}: no known vulnerabilities{note}")
EOF
