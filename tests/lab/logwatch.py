"""Debian's logwatch report scripts, run on syslog lines as logwatch itself runs them.

logwatch's package depends on a mail server, so scripts/test.sh unpacks it under build/debian
rather than installing it; an installed one is used if there is one.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent
SHARES = (Path("/usr/share/logwatch"), ROOT / "build/debian/logwatch/usr/share/logwatch")
DEBIAN_PORTSENTRY = Path("default.conf/services/portsentry.conf")
OVERRIDE = ROOT / "packaging/logwatch/portsentry.conf"


def share() -> Path | None:
    return next((path for path in SHARES if (path / "scripts/services/portsentry").is_file()), None)


def commands(conf: Path) -> list[tuple[str, str]]:
    """A service file's filter commands (`*OnlyService = x` -> ("onlyservice", "x")), in order."""
    found = []
    for line in conf.read_text().splitlines():
        match = re.fullmatch(r"\s*\*(\w+)\s*=\s*(.*?)\s*", line.split("#", 1)[0])
        if match:
            found.append((match[1].lower(), match[2]))
    return found


def file_line(datagram: str, hostname: str) -> str:
    """A datagram sent to /dev/log (`<pri>Mmm dd hh:mm:ss ident[pid]: text`) as rsyslog writes
    it to /var/log/messages: the priority taken off, the host name put after the time."""
    match = re.fullmatch(r"<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (.*)", datagram, re.DOTALL)
    assert match, datagram
    return f"{match[1]} {hostname} {match[2]}"


def report(share: Path, conf: Path, lines: list[str], detail: int = 10) -> str:
    """The portsentry service's report on `lines` (syslog file lines), with the '*' filters of
    `conf` (logwatch takes those of the last file that has any) before the service script."""
    text = "".join(line + "\n" for line in lines)
    env = {
        "PERL5LIB": str(share / "lib"),
        "LOGWATCH_DETAIL_LEVEL": str(detail),
        "LOGWATCH_DEBUG": "0",
        "PATH": "/usr/bin:/bin",
    }
    steps = [[str(share / "scripts/shared" / name), argument] for name, argument in commands(conf)]
    for script in [*steps, [str(share / "scripts/services/portsentry")]]:
        text = subprocess.run(
            ["perl", *script],
            input=text,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    return text
