"""SMTP keys that only make sense together: a login needs a password file that can be read,
and a channel that does not show the password to the network.

Checked when the configuration is loaded (start, SIGHUP, check-config), so a mistake is a
one-line error at once, not a failed mail hours later.
"""

import ipaddress
import stat
from collections.abc import Callable
from pathlib import Path

from portwarden.config.errors import ConfigError
from portwarden.textfile import open_regular


def is_loopback(relay: str) -> bool:
    """`localhost` or a loopback address: a relay on this host, where no one else listens in."""
    if relay.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(relay).is_loopback
    except ValueError:
        return False


def check_smtp(
    where: Callable[[str], str],
    error: Callable[[str, str, str], ConfigError],
    *,
    relay: str,
    starttls: bool,
    user: str | None,
    password_file: Path | None,
    ca_file: Path | None,
) -> list[str]:
    """`where(key)`: 'file:line: ' of a key; `error(key, reason, value)`: a ConfigError at it.
    Raises such an error; returns warnings."""
    warnings = []
    if user is not None and not user.isascii():
        raise error(
            "SMTP_USER",
            "the user name has a non-ASCII character, which SMTP AUTH cannot "
            "send (smtplib sends it as ASCII)",
            user,
        )
    if user is not None and password_file is None:
        raise error(
            "SMTP_USER",
            "a login needs SMTP_PASSWORD_FILE (the password is never written in the main file)",
            user,
        )
    if user is not None and not starttls and not is_loopback(relay):
        raise error(
            "SMTP_USER",
            f"the password would cross the network in clear text to "
            f'{relay}: set SMTP_STARTTLS="1" (or use a relay on loopback)',
            user,
        )
    if password_file is not None:
        mode = _readable_file(
            password_file, lambda why: error("SMTP_PASSWORD_FILE", why, str(password_file))
        )
        _check_password(
            password_file, lambda why: error("SMTP_PASSWORD_FILE", why, str(password_file))
        )
        if user is None:
            warnings.append(
                f"{where('SMTP_PASSWORD_FILE')}SMTP_PASSWORD_FILE is set but "
                "SMTP_USER is not: no login is made"
            )
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            warnings.append(
                f"{where('SMTP_PASSWORD_FILE')}SMTP_PASSWORD_FILE {password_file} "
                f"can be read by others (mode {mode:o}): chmod 600 it"
            )
    if ca_file is not None:
        _readable_file(ca_file, lambda why: error("SMTP_CA_FILE", why, str(ca_file)))
        import ssl  # only here: ssl costs memory that a daemon without mail should not carry

        try:
            ssl.create_default_context(cafile=ca_file)
        except ssl.SSLError:
            raise error(
                "SMTP_CA_FILE", f"{ca_file} holds no PEM CA certificate", str(ca_file)
            ) from None
        if not starttls:
            warnings.append(
                f'{where("SMTP_CA_FILE")}SMTP_CA_FILE is used only with SMTP_STARTTLS="1"'
            )
    return warnings


# MAIL_SUBJECT's macros (scandetd's; alert.mail_text.subject puts them in): %p protocol,
# %s source, %d destination, %% a percent sign.
SUBJECT_MACROS = "psd%"


def check_subject(where: Callable[[str], str], template: str | None) -> list[str]:
    """A warning for each '%' in MAIL_SUBJECT that is no macro (it is sent as written)."""
    if template is None:
        return []
    unknown, i = [], 0
    while i < len(template):
        if template[i] == "%":
            macro = template[i + 1 : i + 2]
            if macro not in tuple(SUBJECT_MACROS):
                unknown.append(f"%{macro}" if macro else "a trailing %")
            i += 1
        i += 1
    return [
        f"{where('MAIL_SUBJECT')}MAIL_SUBJECT {template!r}: {what} is not a macro (%p, %s, "
        "%d, %%); it is sent as written"
        for what in unknown
    ]


def read_password(path: Path) -> str:
    """The first line of SMTP_PASSWORD_FILE, without its line break; nothing else is taken
    (a comment or a second line after it is not part of the password)."""
    with path.open(encoding="utf-8") as file:
        return file.readline().removesuffix("\n").removesuffix("\r")


def _check_password(path: Path, error: Callable[[str], ConfigError]) -> None:
    """The password (the file's first line, as alert/smtp.py reads it) must be there, and ASCII:
    smtplib sends AUTH in ASCII, so any other character made every mail fail."""
    try:
        secret = read_password(path)
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text") from None
    except OSError as failure:
        raise error(f"cannot read {path}: {failure.strerror}") from None
    if not secret:
        raise error(f"{path}: the password (its first line) is empty")
    if not secret.isascii():
        raise error(
            f"{path}: the password has a non-ASCII character, which SMTP AUTH cannot "
            "send (smtplib sends it as ASCII)"
        )


def _readable_file(path: Path, error: Callable[[str], ConfigError]) -> int:
    """The file's permission bits; raises error(why) unless it is a regular file we can read."""
    try:
        file, mode = open_regular(path)
    except ValueError as why:
        raise error(f"cannot read {path}: {why}") from None
    file.close()
    return mode
