#!/usr/bin/env bash
# Run the test suite against the lowest allowed version of every direct dependency.
#
#   bash tools/lowest_deps.sh [PYTHON] [VENV] [PYTEST ARGS...]
#
# PYTHON  interpreter to build the venv from; default: the lowest Python that
#         pyproject.toml claims (requires-python), as python3.X on PATH or from pyenv.
# VENV    folder for a fresh virtual environment (deleted first); default: .lowest-venv
#         (a relative VENV, like pytest's paths, is taken from the repository's root)
#
# uv resolves with --resolution lowest-direct: every dependency named in pyproject.toml
# (the project's and the `test` extra's) is installed at its floor, while the packages
# they pull in are the newest that fit. The script then checks that each direct
# dependency really sits at its floor, and runs `python -m pytest PYTEST ARGS...`.
# Needs the network only for PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

floor_python=$(sed -n 's/^requires-python *= *">=\([0-9.]*\)".*/\1/p' pyproject.toml)
[ -n "$floor_python" ] || { echo "lowest_deps: no requires-python in pyproject.toml" >&2; exit 2; }

python=${1:-}
venv=${2:-.lowest-venv}
shift $(($# < 2 ? $# : 2))

if [ -z "$python" ]; then
  if command -v "python$floor_python" >/dev/null 2>&1; then
    python=$(command -v "python$floor_python")
  else  # pyenv's newest patch release of that version
    root=${PYENV_ROOT:-$HOME/.pyenv}
    best=-1
    for dir in "$root/versions/$floor_python".*; do
      patch=${dir##*/"$floor_python".}
      if [[ $patch =~ ^[0-9]+$ ]] && [ -x "$dir/bin/python" ] && [ "$patch" -gt "$best" ]; then
        best=$patch
        python="$dir/bin/python"
      fi
    done
  fi
  if [ -z "$python" ]; then
    echo "lowest_deps: no Python $floor_python found (python$floor_python or pyenv); pass one" >&2
    exit 2
  fi
fi

version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$version" != "$floor_python" ]; then
  echo "lowest_deps: note: $python is Python $version; the floor is $floor_python" >&2
fi

echo "lowest_deps: Python $version ($python), fresh venv in $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
if [ -x "$venv/bin/python" ]; then bin="$venv/bin"; else bin="$venv/Scripts"; fi
"$bin/python" -m pip install -q --disable-pip-version-check uv
"$bin/python" -m uv pip install --python "$bin/python" --resolution lowest-direct -e '.[test]'

# Every direct dependency at its floor: the check that the resolution did what it says.
"$bin/python" - <<'EOF'
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version

with open("pyproject.toml", "rb") as file:
    project = tomllib.load(file)["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["test"]
pattern = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[[^]]*\])?\s*>=\s*([0-9][0-9.]*)")


def release(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.match(r"[0-9.]*[0-9]", text).group().split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


wrong = []
for requirement in wanted:
    match = pattern.match(requirement)
    if not match:
        continue
    name, floor = match.groups()
    try:
        installed = version(name)
    except PackageNotFoundError:
        print(f"  {name:<16} not installed here (marker: {requirement})")
        continue
    mark = "ok" if release(installed) == release(floor) else "NOT AT FLOOR"
    print(f"  {name:<16} floor {floor:<9} installed {installed:<12} {mark}")
    if mark != "ok":
        wrong.append(name)
if wrong:
    sys.exit(f"lowest_deps: not at their floor: {', '.join(wrong)}")
EOF

export VIRTUAL_ENV="$PWD/$venv"
case "$venv" in /*) export VIRTUAL_ENV="$venv" ;; esac
export PATH="$VIRTUAL_ENV/${bin##*/}:$PATH"
hash -r
exec python -m pytest "$@"
