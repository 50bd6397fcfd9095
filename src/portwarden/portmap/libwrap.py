"""How libwrap (TCP Wrappers) reads one hosts.allow or hosts.deny rule: its fields, the items
of a list, `EXCEPT`, and how a daemon pattern matches a daemon name.

As hosts_access.c of Debian's libwrap0 (7.6.q) does it, and as measured with it (hosts_ctl, in
tests/unit/test_portmap.py) and with a real rpcbind (tests/e2e/test_portmap_layers.py): items
are apart at ", \\t\\r\\n"; a list matches when an item before its first `EXCEPT` matches and
the list after it does not (which may hold an `EXCEPT` of its own); a daemon pattern is `ALL`,
`KNOWN` (any daemon name but `unknown`), a name, or a name with the wildcards `*` and `?`, each
`daemon@host` also; every comparison ignores case, the wildcards' too.
"""

import re

# What separates libwrap's list items (`sep` in hosts_access.c: ", \t\r\n"), and the blanks
# around a field; \f, \v and the like are part of an item there, not space.
_BLANKS = " \t\r\n"
_SEPARATORS = re.compile(r"[, \t\r\n]+")
_EXCEPT = "EXCEPT"
_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def fields(rule: str) -> list[str]:
    """A rule's fields (daemons, clients, options), split at the colons outside brackets as
    libwrap's split_at does: an IPv6 pattern has colons inside [ ]."""
    found, depth, start = [], 0, 0
    for index, char in enumerate(rule):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == ":" and depth == 0:
            found.append(rule[start:index].strip(_BLANKS))
            start = index + 1
    return [*found, rule[start:].strip(_BLANKS)]


def words(field: str) -> list[str]:
    """A field's list items, split as libwrap splits them."""
    return [word for word in _SEPARATORS.split(field) if word]


def is_keyword(word: str, keyword: str) -> bool:
    """Whether `word` is the upper-case `keyword` (ALL, EXCEPT...) in any case."""
    return _ascii_upper(word) == keyword


def is_except(word: str) -> bool:
    return is_keyword(word, _EXCEPT)


def split_except(items: list[str]) -> tuple[list[str], list[str]]:
    """The items before the first EXCEPT (any case), and those after it."""
    cut = next((n for n, word in enumerate(items) if is_except(word)), len(items))
    return items[:cut], items[cut + 1 :]


def daemons_match(field: str, daemon: str) -> bool:
    """Whether libwrap applies a rule whose daemon list is `field` to `daemon` (list_match with
    server_match). A `daemon@host` item is taken to match whatever its host part: that depends
    on the address the caller called, so the rule may apply."""
    return _list_matches(words(field), daemon)


def _list_matches(items: list[str], daemon: str) -> bool:
    for index, word in enumerate(items):
        if is_except(word):
            return False
        if daemon_pattern_matches(word, daemon):
            _, exceptions = split_except(items[index + 1 :])
            return not exceptions or not _list_matches(exceptions, daemon)
    return False


def names(field: str, daemon: str) -> bool:
    """Whether an item of the daemon list `field` before its first EXCEPT is `daemon` itself
    (not ALL, KNOWN or a wildcard that matches it), case ignored."""
    named, _ = split_except(words(field))
    return any(_daemon_part(word) == _ascii_upper(daemon) for word in named)


def daemon_pattern_matches(word: str, daemon: str) -> bool:
    """One daemon pattern against a daemon name, as libwrap's server_match and string_match:
    `ALL`, `KNOWN`, wildcards, or the name, case ignored. (A pattern starting or ending with a
    dot matches only a name with a dot in it: never a daemon name.)"""
    pattern, name = _daemon_part(word), _ascii_upper(daemon)
    if "*" in pattern or "?" in pattern:
        wildcards = "".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in pattern)
        return re.fullmatch(wildcards, name, re.DOTALL) is not None
    return pattern == "ALL" or (pattern == "KNOWN" and name != "UNKNOWN") or pattern == name


def _daemon_part(word: str) -> str:
    """The daemon pattern of an item, upper-cased: before its `@` (libwrap looks for one after
    the first character only)."""
    at = word.find("@", 1)
    return _ascii_upper(word if at < 0 else word[:at])


def _ascii_upper(text: str) -> str:
    """`text` with only ASCII letters upper-cased: libwrap compares with strcasecmp."""
    return text.translate(_UPPER)
