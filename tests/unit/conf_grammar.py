"""Hypothesis strategies shaped like the configuration and ignore-file grammar.

Random text rarely gets past the first character of a parser (a quote, a digit); these build
inputs from the grammar's own pieces: real keys, '=', quotes, port lists with ranges and empty
items, addresses with prefix lengths and dotted masks, scandetd rules, audit groups, commands
with quotes and shell operators. Each piece comes in good and bad variants, so a generated
file gets deep into every value parser and either loads or fails with a ConfigError.
"""

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from portwarden.config.settings import KEYS

Text = SearchStrategy[str]


def cat(*parts: Text | str) -> Text:
    """The parts one after the other."""
    return st.tuples(*(st.just(p) if isinstance(p, str) else p for p in parts)).map("".join)


def maybe(part: Text) -> Text:
    return st.one_of(st.just(""), part)


def joined(part: Text, separator: str, max_size: int = 4) -> Text:
    return st.lists(part, max_size=max_size).map(separator.join)


blanks = st.sampled_from(["", " ", "  ", "\t"])
port = st.integers(1, 65535).map(str)

# Numbers: good ones, edges, and what int()/float()/str.isdigit() disagree on.
digits = st.one_of(
    port,
    st.integers(0, 70_000).map(str),
    st.sampled_from(["\uff11", "\u00b2", "\u0663", "\uff18\uff10", "1\u00b3"]),  # isdigit()
    st.sampled_from(
        [
            "0",
            "00080",
            "65535",
            "65536",
            "4294967296",
            "9" * 40,
            "9" * 5000,
            "-1",
            "+1",
            "1.5",
            "1e3",
            "0x1f",
            "1_0",
            " 7 ",
            "",
        ]
    ),
)
numbers = st.one_of(
    digits,
    st.floats().map(repr),
    st.floats(1e-9, 4e7).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e309", "0.0", "-0", "1e-320", "1,5", "."]),
)

good_port_item = st.one_of(port, cat(port, "-", port))  # a range forwards or backwards
port_item = st.one_of(
    good_port_item,
    good_port_item,
    digits,
    cat(digits, "-", digits),
    st.sampled_from(["", " ", "-", "1-", "-5", "1--2", "1-2-3", "*", "2-1", "65535-1"]),
)
port_list = joined(port_item, ",", 6)

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
address = st.one_of(
    ipv4,
    ipv6,
    ipv4.map(lambda a: f"::ffff:{a}"),  # IPv4-mapped
    ipv6.map(lambda a: f"{a}%eth0"),  # with a zone
    st.sampled_from(
        [
            "1.2.3",
            "256.1.1.1",
            "1.2.3.4.5",
            "::g",
            ":::",
            "",
            "gw.example",
            "1.2.3.4x",
            "[::1]",
            "01.2.3.4",
            "0.0.0.0",
            "::",
            "fe80::1%",
        ]
    ),
)
dotted_mask = st.one_of(
    st.integers(0, 32).map(lambda b: str(IPv4Address((0xFFFFFFFF << (32 - b)) & 0xFFFFFFFF))),
    st.integers(0, 2**32 - 1).map(lambda n: str(IPv4Address(n))),  # mostly not contiguous
    st.sampled_from(["255.0.255.0", "0.0.0.255", "255.255.255.1", "255.255.256.0", "255.255.255"]),
)
mask = st.one_of(
    st.integers(0, 140).map(str),
    dotted_mask,
    st.sampled_from(["", "x", "-1", "\uff12", "24.0", "ffff::", "/"]),
)
network = st.one_of(address, cat(address, "/", mask), cat(ipv4, "/", dotted_mask))

endpoint = st.one_of(
    network,
    cat(network, ":", port_list),
    cat("[", address, "]", maybe(cat(":", port_list))),
    st.sampled_from(
        [
            "*",
            "any",
            "",
            "[",
            "]:1",
            "[::1",
            "1.2.3.4:",
            "[2001:db8::1]:",
            "[198.18.0.1]:",
            "198.18.0.0/24:",
            "[::1]x",
            "[]:1",
        ]
    ),
)
scan_rules = joined(st.one_of(endpoint, cat(endpoint, blanks, "->", blanks, endpoint)), "; ", 3)

device = st.sampled_from(["eth0", "lo", "br-lan.10", "x" * 16, "e th", "eth0:1", ""])
audit_item = st.one_of(
    cat(digits, "/", st.sampled_from(["tcp", "udp", "UDP", "sctp", ""])),
    cat(
        st.sampled_from(["mountd", "nfs", "RPC_100003", "RPC_", "rpc bind", "x" * 70]),
        "/",
        st.sampled_from(["tcp", "udp"]),
    ),
    st.sampled_from(["", "/", "22", "tcp"]),
)
audit_groups = joined(
    cat(maybe(cat(st.one_of(address, device), ":")), joined(audit_item, ",", 3)), ";", 3
)

command_piece = st.sampled_from(
    [
        "/bin/echo",
        "/sbin/route add -host",
        " ",
        "$TARGET$",
        "$PORT$",
        "$MODE$",
        "'",
        '"',
        "\\",
        "&&",
        "|",
        ";",
        ">",
        "`",
        "$(",
        "(",
        ")",
        "%h",
        "\\%",
        "x",
        "#",
        " # c",
    ]
)
command = st.one_of(
    st.lists(command_piece, max_size=8).map("".join),
    cat(
        st.sampled_from(["(", "$(", "`", "|", ";", "&&", ">", "'", '"', "#", " "]),
        st.lists(command_piece, max_size=6).map("".join),
    ),
)

free_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
host = st.one_of(
    address, st.sampled_from(["localhost", "smtp.example.com", "bad host", "a_b", "-", "x" * 300])
)
mail = cat(st.sampled_from(["root", "a.b+c", "", "a b", '"q"', "x" * 100]), maybe(cat("@", host)))
listen = st.one_of(
    cat(maybe(st.one_of(address, cat("[", address, "]"))), maybe(st.just(":")), digits),
    cat(maybe(st.one_of(address, cat("[", address, "]"))), ":"),  # no port
    st.sampled_from(["", ":", "[::1]:", "198.18.0.1:", "[]:1", "[::1]", ":9100", "[[::1]]:1"]),
)
mail_list = joined(mail, ",", 3)
addresses = joined(address, ",", 3)
device_list = joined(device, ",", 3)
paths = st.sampled_from(
    [
        "x",
        "/tmp/pw-fxc-x",
        "rel/dir",
        ".",
        "a" * 300,
        "/" + "b" * 300 + "/c",
        "/dev/null",
        "/proc/self",
        "ignore",
        'q"uote',
        "",
    ]
)


def words(*choices: str) -> Text:
    return st.sampled_from([*choices, "", " ", "yes", "-1", "\uff11"])


# The keys whose value is 0 or 1.
FLAG_KEYS = [
    "RESOLVE_HOST",
    "KILL_RUN_CMD_FIRST",
    "SCAN_FLOOD_DETECTION",
    "BLOCK_FORWARD",
    "PROTECT_GATEWAYS",
    "PROTECT_NAMESERVERS",
    "UNBLOCK_ON_STOP",
    "LOG_CONNECTIONS",
    "LOG_DETAILS",
    "SMTP_STARTTLS",
    "AUDIT_UDP",
    "MAIL_ON_TCP_SCAN",
    "MAIL_ON_UDP_SCAN",
    "MAIL_ON_OS_PROBE",
    "MAIL_ON_AUDIT",
    "HISTORY_ALERT_ONLY",
]

SHAPES: dict[str, Text] = {
    **dict.fromkeys(
        ["TCP_MODE", "UDP_MODE"],
        words(
            "tcp", "stcp", "atcp", "udp", "sudp", "audp", "none", "off", "-stcp", "STCP", "--tcp"
        ),
    ),
    **dict.fromkeys(
        [
            "TCP_PORTS",
            "UDP_PORTS",
            "ADVANCED_EXCLUDE_TCP",
            "ADVANCED_EXCLUDE_UDP",
            "UDP_REPLY_SOURCE_PORTS",
        ],
        port_list,
    ),
    **dict.fromkeys(
        [
            "ADVANCED_PORTS_TCP",
            "ADVANCED_PORTS_UDP",
            "SMTP_PORT",
            "AUDIT_MIN_PORT",
            "AUDIT_MAX_PORT",
            "SCAN_TRIGGER",
            "SCAN_COUNT_THRESHOLD",
            "BLOCKS_PER_MINUTE",
            "EVENT_LOG_MAX_BYTES",
            "EVENT_LOG_KEEP",
            "BLOCKS_MAX",
            "MAIL_PER_HOUR",
            "IPV6_SOURCE_PREFIX",
        ],
        digits,
    ),
    **dict.fromkeys(
        [
            "SCAN_TRIGGER_WINDOW",
            "SCAN_INTERVAL",
            "KILL_CMD_TIMEOUT",
            "SCAN_END_QUIET",
            "OS_PROBE_QUIET",
            "SMTP_TIMEOUT",
            "SMTP_RETRY_DELAY",
            "SMTP_GIVE_UP_AFTER",
            "BLOCK_DURATION",
            "SCAN_REPORT_INTERVAL",
            "BLOCK_DURATION_MAX",
            "AUDIT_INTERVAL",
            "BLOCK_ESCALATION",
            "SERVICE_GONE_GRACE",
        ],
        numbers,
    ),
    **dict.fromkeys([*FLAG_KEYS, "BLOCK_TCP", "BLOCK_UDP"], words("0", "1", "2", "01")),
    "BLOCK_NFTABLES": words("auto", "AUTO", "0", "1"),
    "NFT_TABLE": words("portwarden", "pw_2", "portwarden_portmap", "2bad", "a-b", "x" * 40),
    "SYSLOG_FACILITY": words("daemon", "LOG_DAEMON", "log_local7", "kern", "nope"),
    **dict.fromkeys(
        [
            "AUDIT_SEVERITY_MISSING",
            "AUDIT_SEVERITY_NEW",
            "AUDIT_SEVERITY_RESTARTED",
            "AUDIT_SEVERITY_PORTSWITCH",
            "AUDIT_SEVERITY_PORTMAPPER",
        ],
        words("crit", "err", "Notice", "debug"),
    ),
    **dict.fromkeys(["TCP_SCAN_IGNORE", "UDP_SCAN_IGNORE"], scan_rules),
    **dict.fromkeys(
        ["AUDIT_REQUIRED", "AUDIT_OPTIONAL", "AUDIT_IGNORE", "AUDIT_SKIP"], audit_groups
    ),
    **dict.fromkeys(["KILL_ROUTE", "KILL_RUN_CMD", "KILL_HOSTS_DENY"], command),
    **dict.fromkeys(
        [
            "IGNORE_FILE",
            "HISTORY_FILE",
            "BLOCKED_FILE",
            "STATE_DIR",
            "HOSTS_DENY_FILE",
            "SYSLOG_SOCKET",
            "EVENT_LOG",
            "SMTP_PASSWORD_FILE",
            "SMTP_CA_FILE",
        ],
        paths,
    ),
    **dict.fromkeys(["PORT_BANNER", "MAIL_SUBJECT", "SMTP_USER"], st.one_of(free_text, command)),
    "MAIL_FROM": mail,
    "MAIL_TO": mail_list,
    **dict.fromkeys(["SMTP_RELAY", "SMTP_HELO"], host),
    "METRICS_LISTEN": listen,
    "AUDIT_INTERFACES": addresses,
    "AUDIT_DEVICES": device_list,
}
any_value = st.one_of(
    numbers, port_list, network, scan_rules, audit_groups, command, paths, free_text, listen
)


def value_for(key: str) -> Text:
    """Mostly text shaped for the key (a key without a shape of its own gets any), sometimes
    another key's shape."""
    shaped = SHAPES.get(key, any_value)
    return st.one_of(shaped, shaped, shaped, any_value)


trailer = st.sampled_from(["", " ", " # comment", "#x", " x", '"', ' # "q"', "\t# t"])


def quoted_or_not(key: str, value: str) -> str:
    """KEY="value", or KEY=value when the value holds a quote."""
    return f"{key}={value}" if '"' in value else f'{key}="{value}"'


def assignment(key: str) -> Text:
    """A line setting `key`: mostly well formed, so that the value reaches its parser."""
    value = value_for(key)
    return st.one_of(
        st.builds(quoted_or_not, st.just(key), value),
        st.builds(quoted_or_not, st.just(key), value),
        cat(blanks, key, blanks, "=", blanks, '"', value, '"', trailer),
        cat(blanks, key, blanks, "=", blanks, value, trailer),  # unquoted
        cat(key, '="', value),  # no closing quote
        cat(blanks, key, st.sampled_from([" ", "  ", "\t", " \t"]), '"', value, '"', trailer),
        cat(key, " ", value, trailer),  # no '=': the value must be quoted
    )


# One strategy per key, built once (a flatmap would build and validate new ones per example);
# keys whose values have structure (lists, addresses, rules, commands) drawn four times as often
# as the 0/1 switches and single numbers.
_STRUCTURED = [
    port_list,
    scan_rules,
    audit_groups,
    command,
    listen,
    mail,
    mail_list,
    host,
    addresses,
    device_list,
]
any_assignment = st.one_of(
    [assignment(k) for k in (*KEYS, "FUTURE_KEY", "tcp_ports", "9KEY")]
    + [assignment(k) for k in KEYS if any(SHAPES.get(k) is s for s in _STRUCTURED)] * 3
)
other_line = st.one_of(st.sampled_from(["", "# comment", "   # indented", '"', "="]), free_text)

ignore_line = st.one_of(
    cat(
        blanks,
        network,
        st.sampled_from(["", " ", " router", "\tgw 2", "x", " # c", "#c", ",1.2.3.4", "\x0c"]),
    ),
    other_line,
)
ignore_text = joined(ignore_line, "\n", 8)


# Values every key must accept: a file of these loads, and check-config's output of it loads
# back to the same settings.
def one_line_text(max_size: int = 16) -> Text:
    """Printable text that some line form (quoted or not) carries exactly."""
    printable = st.characters(categories=("L", "M", "N", "P", "S"), include_characters=" ")
    return st.text(printable, max_size=max_size).filter(
        lambda t: '"' not in t or (t == t.strip(" ") and " #" not in t and t[0] != '"')
    )


port_range = st.tuples(st.integers(1, 65535), st.integers(0, 300)).map(
    lambda a_n: f"{a_n[0]}-{min(65535, a_n[0] + a_n[1])}"
)
valid_port_list = cat(joined(st.one_of(port, port_range), ",", 5), st.sampled_from(["", ","]))
# Seconds as the keys take them: ASCII digits, maybe a fraction (many digits: 0.00001 must be
# shown as such by check-config, not as 1e-05).
seconds = st.one_of(
    st.integers(1, 366 * 86400).map(str),
    cat(
        st.integers(0, 366 * 86400 - 1).map(str),
        ".",
        st.text("0123456789", min_size=1, max_size=20),
    ),
).filter(lambda text: 0 < float(text) <= 366 * 86400)
duration = st.one_of(st.sampled_from(["0", "0.0"]), seconds)
block_duration = st.one_of(duration, st.integers(1, 10 * 365 * 86400).map(str))
audit_interval = st.one_of(
    st.sampled_from(["0", "0.0", "10", "10.0"]), st.integers(10, 366 * 86400).map(str)
)
flag = st.sampled_from(["0", "1"])
positive = st.integers(1, 10**9).map(str)
path = st.sampled_from(["x", "/tmp/pw-fxc-x", "rel/dir", "state", "a b", 'q"uote'])
unmapped_ipv6 = ipv6.filter(lambda a: IPv6Address(a).ipv4_mapped is None)
valid_address = st.one_of(ipv4, unmapped_ipv6)
_CONTIGUOUS = {str(IPv4Address((0xFFFFFFFF << (32 - b)) & 0xFFFFFFFF)) for b in range(33)}
# The two ends of a rule are in one family (an IPv4-mapped address is IPv4).
valid_ipv4_endpoint = st.one_of(
    ipv4,
    cat(ipv4, "/", st.integers(0, 32).map(str)),
    cat(ipv4, "/", dotted_mask.filter(lambda m: m in _CONTIGUOUS)),
    cat("::ffff:", ipv4, "/", st.integers(96, 128).map(str)),
    cat(
        ipv4, "/", st.integers(0, 32).map(str), ":", valid_port_list.filter(lambda p: p.strip(","))
    ),
    cat("[::ffff:", ipv4, "]:", port),
)
valid_ipv6_endpoint = st.one_of(
    unmapped_ipv6,
    cat(unmapped_ipv6, "/", st.integers(0, 128).map(str)),
    cat("[", unmapped_ipv6, "]:", port),
)
valid_rules = joined(
    st.one_of(
        valid_ipv4_endpoint,
        valid_ipv6_endpoint,
        cat(valid_ipv4_endpoint, " -> ", valid_ipv4_endpoint),
        cat(valid_ipv6_endpoint, " -> ", valid_ipv6_endpoint),
    ),
    "; ",
    3,
)
valid_where = st.one_of(valid_address, st.sampled_from(["eth0", "lo", "br-lan.10"]))
proto = st.sampled_from(["tcp", "udp"])
valid_groups = joined(
    cat(
        maybe(cat(valid_where, ":")),
        joined(cat(st.one_of(port, st.just("mountd")), "/", proto), ",", 3).filter(bool),
    ),
    "; ",
    3,
)
# A required item must be one the audit can see whatever AUDIT_UDP, AUDIT_MIN/MAX_PORT,
# AUDIT_INTERFACES and AUDIT_DEVICES say: on every audited address.
valid_required = joined(
    joined(st.sampled_from(["1024/tcp", "mountd/tcp"]), ",", 3).filter(bool), "; ", 3
)
valid_skip = joined(
    cat(maybe(cat(valid_where, ":")), joined(cat(port, "/", proto), ",", 3).filter(bool)), "; ", 3
)
valid_command = cat(
    st.sampled_from(["/sbin/route add -host", "ip route add blackhole", "/x"]),
    " $TARGET$",
    joined(
        st.sampled_from(
            [
                "$PORT$",
                "$MODE$",
                "-j DROP",
                "'a b'",
                '"x y"',
                "\\%h",
                "&&",
                "|",
                ">/dev/null",
                "`id`",
            ]
        ),
        " ",
        3,
    ).map(lambda rest: f" {rest}" if rest else ""),
)
valid_hosts_deny = cat(
    "ALL: $TARGET$", st.sampled_from(["", " : DENY", " \\\\x", ' : spawn (echo "\\%h $PORT$")'])
)
valid_listen = st.one_of(st.just(""), port, cat(ipv4, ":", port), cat("[", ipv6, "]:", port))
valid_mail = st.sampled_from(["root@localhost", "a.b+c@example.org"])

VALID: dict[str, Text] = {
    "TCP_MODE": st.sampled_from(["tcp", "stcp", "atcp", "none", ""]),
    "UDP_MODE": st.sampled_from(["udp", "sudp", "audp", "none", ""]),
    # A classic or stealth mode needs a port (TCP_MODE and UDP_MODE default to classic).
    **dict.fromkeys(["TCP_PORTS", "UDP_PORTS"], valid_port_list.filter(lambda p: p.strip(","))),
    **dict.fromkeys(
        ["ADVANCED_EXCLUDE_TCP", "ADVANCED_EXCLUDE_UDP", "UDP_REPLY_SOURCE_PORTS"], valid_port_list
    ),
    **dict.fromkeys(["ADVANCED_PORTS_TCP", "ADVANCED_PORTS_UDP", "SMTP_PORT"], port),
    **dict.fromkeys(
        ["IGNORE_FILE", "HISTORY_FILE", "BLOCKED_FILE", "STATE_DIR", "HOSTS_DENY_FILE"], path
    ),
    # Files that must exist and keys checked together with them (a login needs a readable
    # password file): left unset; the other paths and texts cover their kinds of value.
    **dict.fromkeys(["SMTP_PASSWORD_FILE", "SMTP_CA_FILE", "SMTP_USER"], st.just("")),
    "EVENT_LOG_KEEP": st.integers(1, 20).map(str),
    "BLOCKS_MAX": st.integers(0, 10**9).map(str),
    **dict.fromkeys(["SYSLOG_SOCKET", "EVENT_LOG"], st.one_of(st.just(""), path)),
    **dict.fromkeys(FLAG_KEYS, flag),
    **dict.fromkeys(["BLOCK_TCP", "BLOCK_UDP"], st.sampled_from(["0", "1", "2"])),
    **dict.fromkeys(["KILL_ROUTE", "KILL_RUN_CMD"], st.one_of(st.just(""), valid_command)),
    "KILL_HOSTS_DENY": st.one_of(st.just(""), valid_hosts_deny),
    "SCAN_TRIGGER": st.integers(0, 100_000).map(str),
    "SCAN_COUNT_THRESHOLD": st.integers(0, 64).map(str),
    "IPV6_SOURCE_PREFIX": st.integers(32, 128).map(str),
    "PORT_BANNER": one_line_text(),
    "MAIL_SUBJECT": one_line_text(),
    **dict.fromkeys(
        [
            "SCAN_TRIGGER_WINDOW",
            "SCAN_INTERVAL",
            "KILL_CMD_TIMEOUT",
            "SCAN_END_QUIET",
            "OS_PROBE_QUIET",
            "SCAN_REPORT_INTERVAL",
            "SMTP_TIMEOUT",
            "SMTP_GIVE_UP_AFTER",
        ],
        seconds,
    ),
    "SMTP_RETRY_DELAY": seconds.filter(lambda text: float(text) >= 10),
    **dict.fromkeys(["BLOCK_DURATION", "BLOCK_DURATION_MAX"], block_duration),
    "AUDIT_INTERVAL": audit_interval,
    "SERVICE_GONE_GRACE": duration,
    "BLOCK_ESCALATION": st.one_of(st.just("1"), st.floats(1, 1000).map(repr)),
    **dict.fromkeys(["BLOCKS_PER_MINUTE", "MAIL_PER_HOUR"], positive),
    "EVENT_LOG_MAX_BYTES": st.integers(64 * 1024, 10**12).map(str),
    **dict.fromkeys(["TCP_SCAN_IGNORE", "UDP_SCAN_IGNORE"], valid_rules),
    "BLOCK_NFTABLES": st.sampled_from(["auto", "1", "0", "AUTO"]),
    "NFT_TABLE": st.sampled_from(["portwarden", "pw_2", "Blocker"]),
    "SYSLOG_FACILITY": st.sampled_from(["daemon", "LOG_AUTH", "local7"]),
    "MAIL_FROM": valid_mail,
    "MAIL_TO": joined(valid_mail, ",", 3).filter(bool),
    **dict.fromkeys(["SMTP_RELAY", "SMTP_HELO"], st.sampled_from(["localhost", "::1", "a.b-c"])),
    "METRICS_LISTEN": valid_listen,
    "AUDIT_INTERFACES": joined(valid_address, ",", 3),
    "AUDIT_DEVICES": st.sampled_from(["", "eth0", "eth0, lo"]),
    "AUDIT_MIN_PORT": st.integers(1, 1024).map(str),
    "AUDIT_MAX_PORT": st.integers(1024, 65535).map(str),
    "AUDIT_REQUIRED": valid_required,
    **dict.fromkeys(["AUDIT_OPTIONAL", "AUDIT_IGNORE"], valid_groups),
    "AUDIT_SKIP": valid_skip,
    **dict.fromkeys(
        [
            "AUDIT_SEVERITY_MISSING",
            "AUDIT_SEVERITY_NEW",
            "AUDIT_SEVERITY_RESTARTED",
            "AUDIT_SEVERITY_PORTSWITCH",
            "AUDIT_SEVERITY_PORTMAPPER",
        ],
        st.sampled_from(["crit", "info", "Notice"]),
    ),
}


valid_lines = (
    st.dictionaries(st.sampled_from(sorted(VALID)), st.just(""), max_size=40)
    .flatmap(lambda chosen: st.fixed_dictionaries({key: VALID[key] for key in chosen}))
    # SCAN_REPORT_INTERVAL is at least SCAN_END_QUIET, and at least OS_PROBE_QUIET when set
    .filter(
        lambda values: (
            float(values.get("SCAN_REPORT_INTERVAL", "300"))
            >= max(
                float(values.get("SCAN_END_QUIET", "30")),
                float(values.get("OS_PROBE_QUIET", "0")),
            )
        )
    )
    .map(
        lambda values: (
            [quoted_or_not(k, v) for k, v in values.items()] + ['MAIL_TO="root@localhost"']
        )
    )
)
valid_conf_text = valid_lines.map(lambda lines: "\n".join(lines) + "\n")

# A valid file with a few grammar-shaped lines before it (the first occurrence of a key wins):
# every parser is reached with the rest of the file valid, so what it does is what decides.
conf_text = st.tuples(
    st.lists(st.one_of(any_assignment, any_assignment, other_line), min_size=1, max_size=6),
    valid_lines,
    st.sampled_from(["\n", "\r\n"]),
).map(lambda parts: parts[2].join(parts[0] + parts[1]))
