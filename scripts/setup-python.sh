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
if [ "${WITH_TEST:-0}" = 1 ]; then extra='.[test]'; kind=test; else extra='.'; kind=run; fi
# The install is editable (the source is used where it is): it is redone only when
# pyproject.toml (dependencies, entry point) changed since, so a start needs no package index
# (an installed clone works offline) and spends no time in pip. `.[test]` covers `.` too.
stamp=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat ".venv/.installed-$kind" 2>/dev/null)" != "$stamp" ] || [ ! -x .venv/bin/portwarden ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$extra"
    echo "$stamp" > .venv/.installed-run
    [ "$kind" = run ] || echo "$stamp" > ".venv/.installed-$kind"
fi
