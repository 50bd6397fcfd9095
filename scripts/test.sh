#!/bin/sh
# Install everything the tests need (as root, on Debian 12) and run the whole suite:
# lint, type check, unit tests, lab and end-to-end tests in network namespaces.
set -eu
cd "$(dirname "$0")/.."
packages="iproute2 nftables iptables nmap hping3 masscan tcpdump rpcbind portsentry
          iputils-ping libnftables1 procps systemd"
# Only for their published filters and report scripts, which the tests run on our lines.
bare_packages="fail2ban"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! dpkg -s $packages $bare_packages >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        echo "test.sh: installing the test packages needs root: sudo $0" >&2
        exit 2
    fi
    # Debian's service packages (portsentry, rpcbind, fail2ban) must not start their daemons in this
    # host's own network: a policy-rc.d that exits 101 stops that, for the install only.
    # Removed however the install ends (a failed apt-get under set -e, Ctrl-C): left behind,
    # it would stop every package on this machine from ever starting its services.
    made_policy=0
    remove_policy() { [ "$made_policy" = 0 ] || rm -f /usr/sbin/policy-rc.d; made_policy=0; }
    trap remove_policy EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        made_policy=1
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
    fi
    # ... nor at the next boot: the tests start their own, in lab namespaces.
    new_services=""
    dpkg -s rpcbind >/dev/null 2>&1 || new_services="rpcbind.service rpcbind.socket"
    dpkg -s portsentry >/dev/null 2>&1 || new_services="$new_services portsentry.service"
    dpkg -s fail2ban >/dev/null 2>&1 || new_services="$new_services fail2ban.service"
    apt-get update -qq
    apt-get install -y -qq $packages >/dev/null
    apt-get install -y -qq --no-install-recommends $bare_packages >/dev/null
    remove_policy
    [ -z "$new_services" ] || systemctl disable --quiet $new_services 2>/dev/null || true
fi
# logwatch's report scripts, unpacked, not installed: its package depends on a mail server.
if [ ! -d build/debian/logwatch/usr/share/logwatch ]; then
    mkdir -p build/debian
    (cd build/debian && apt-get download logwatch >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download logwatch >/dev/null; })
    dpkg-deb -x build/debian/logwatch_*.deb build/debian/logwatch
fi
WITH_TEST=1 . scripts/setup-python.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
