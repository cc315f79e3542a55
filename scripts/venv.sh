# make_venv DIR REQUIREMENTS WHAT: (re)creates the Python venv DIR from REQUIREMENTS when it
# is missing or the requirements changed since it was made. Sourced by setup.sh and
# setup-torch.sh.
make_venv() {
  local venv=$1 req=$2 what=$3
  if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/.kiln-requirements"; then
    echo "setup: creating the Python venv $venv ($what)"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.kiln-requirements"
  fi
}
