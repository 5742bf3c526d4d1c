#!/usr/bin/env bash
# Build the wheel, install it with the sandbox extra in a fresh venv, and run the installed
# command from outside the source tree: catches modules and data files missing from the
# wheel. Called by `make test-dist`.
#   PYTHON        interpreter for the fresh venv (default python3.11, else python3)
#   BUILD_PYTHON  interpreter that has `build` installed (default .venv/bin/python)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
build_python=${BUILD_PYTHON:-$repo/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/csvimport-test-dist.XXXXXX")
sandbox_pid=

cleanup() {
    if [[ -n $sandbox_pid ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        kill -KILL "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "test-dist: FAILED: $*" >&2
    exit 1
}

echo "test-dist: building the wheel"
rm -f "$repo"/dist/csvimport-*.whl
"$build_python" -m build --wheel --outdir "$repo/dist" "$repo" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; fail "python -m build"; }
wheels=("$repo"/dist/csvimport-*.whl)
[[ ${#wheels[@]} -eq 1 && -f ${wheels[0]} ]] || fail "expected one wheel in dist/, found: ${wheels[*]}"
wheel=${wheels[0]}
echo "test-dist: installing $(basename "$wheel")[sandbox] into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet "${wheel}[sandbox]" 2>"$work/pip.log" \
    || { cat "$work/pip.log" >&2; fail "pip install"; }

# From here on, run from a folder where the source tree is not importable.
cd "$work"
unset PYTHONPATH
csvimport=$work/venv/bin/csvimport

"$csvimport" --help >/dev/null || fail "csvimport --help"
expected="csvimport $(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/csvimport/__init__.py")"
actual=$("$csvimport" --version) || fail "csvimport --version"
[[ $actual == "$expected" ]] || fail "csvimport --version printed '$actual', expected '$expected'"

# The installed package must find its data files inside itself, not in the source tree.
"$work/venv/bin/python" - "$work/venv" <<'PY' || fail "data files are not inside the wheel"
import sys
from pathlib import Path

import csvimport
from csvimport.resources import schema_path, schemas_dir, templates_dir

venv = Path(sys.argv[1]).resolve()
for path in (Path(csvimport.__file__), schemas_dir(), templates_dir(), schema_path("sandbox-pool.json")):
    assert venv in path.resolve().parents, f"{path} is not inside {venv}"
PY

echo "test-dist: starting csvimport sandbox"
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    "$csvimport" sandbox >"$work/sandbox.out" 2>"$work/sandbox.err" &
sandbox_pid=$!
for _ in $(seq 1 600); do  # up to 60 s for the first line
    [[ $(wc -l <"$work/sandbox.out") -ge 1 ]] && break
    kill -0 "$sandbox_pid" 2>/dev/null || break
    sleep 0.1
done
[[ $(wc -l <"$work/sandbox.out") -ge 1 ]] \
    || { cat "$work/sandbox.err" >&2; fail "csvimport sandbox printed no first line"; }
head -n 1 "$work/sandbox.out" | "$work/venv/bin/python" -c '
import json, sys
info = json.loads(sys.stdin.readline())
keys = {"endpoint_url", "region", "user_pool_id", "user_pool_name", "logs_role_arn"}
missing = keys - info.keys()
assert not missing, f"first line lacks {sorted(missing)}: {info}"
' || { cat "$work/sandbox.out" "$work/sandbox.err" >&2; fail "the first line is not the JSON object"; }

kill -INT "$sandbox_pid"
for _ in $(seq 1 300); do  # up to 30 s to stop
    kill -0 "$sandbox_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$sandbox_pid" 2>/dev/null && fail "csvimport sandbox did not stop within 30 s of SIGINT"
status=0
wait "$sandbox_pid" || status=$?
sandbox_pid=
[[ $status -eq 0 ]] || { cat "$work/sandbox.err" >&2; fail "csvimport sandbox exited $status after SIGINT"; }
grep -q "sandbox stopped" "$work/sandbox.err" || fail "no 'sandbox stopped' on stderr"

echo "test-dist: OK ($(basename "$wheel"))"
