# Sourced by run.sh and test.sh: make ./.venv with portwarden (and, with WITH_TEST=1, test tools).
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "$0: installing python3-venv needs root: sudo $0" >&2
        return 2  # sourced: the script that sourced it stops (set -e), an interactive shell not
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "${WITH_TEST:-0}" = 1 ]; then extra='.[test]'; else extra='.'; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e "$extra"
