#!/bin/sh
# Install portwarden into ./.venv and run the daemon in the foreground.
# With no -c FILE, /etc/portwarden/portwarden.conf is used if it exists, else the embedded defaults.
set -eu
cd "$(dirname "$0")/.."
. scripts/setup-python.sh
exec .venv/bin/portwarden run "$@"
