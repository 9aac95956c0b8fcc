# Sourced by bin/dev and bin/test: make sure .venv exists and matches pyproject.toml.
# Installs only when pyproject.toml changed since the last install, so later runs start at once.

ensure_venv() {
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Tessera needs Python 3.11 or newer as '$python' (set PYTHON=/path/to/python3.11)" >&2
    return 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv ..." >&2
    "$python" -m venv .venv
  fi
  local stamp=.venv/.tessera-installed
  local want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing Tessera and its dependencies into .venv ..." >&2
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    .venv/bin/python -m pip install --quiet -e '.[dev]' >&2
    echo "$want" > "$stamp"
  fi
}
