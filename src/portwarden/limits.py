"""Every limit in one place, with its unit and the attack it resists."""

# Per-source detection state. A flood of spoofed sources must not grow memory: the table holds at
# most this many sources. When full it evicts the source seen least recently among those that
# made two probes or more if it has been quiet for longer than SCAN_TRIGGER_WINDOW (stale: its
# next probe starts over anyway), else the one seen least recently among those that made a
# single probe, else the one with the fewest probes among the EVICTION_SAMPLE seen least
# recently (of those, the one seen least recently). So a flood of spoofed one-packet sources
# (hping3 --flood --rand-source) cannot reset a real scanner's SCAN_TRIGGER count, and neither
# can a table filled over days by sources that probed twice each (16,384 of them, or 32,768
# spoofed packets) make every new source push out the one before; a flood of spoofed sources
# that probe twice each pushes out a scanner that has made more probes only once the sample
# holds no source with fewer probes than it (each spoofed source must make as many probes as
# the scanner has made). Measured (tests/unit/
# test_engine.py::test_memory_per_source_is_bounded_whatever_the_trigger, tracemalloc, CPython
# 3.11) at about 4.2 KiB per source in the worst case, whatever SCAN_TRIGGER: IPv6 sources, probes
# made from packets as the sensors make them, every port slot of both protocols used, more flag
# patterns (with reserved bits) than PATTERNS_TRACKED_MAX, each a scan type of its own, every
# SCAN_TRIGGER slice, and the first and last probe of each protocol's scan kept for its summary;
# so about 66 MiB for a full table (IPV6_SOURCE_PREFIX below 128: about 5 KiB, 82 MiB; see
# ADDRESSES_TRACKED_MAX). (The names of scan types and flag patterns are made once
# each, not per probe: detect/probe.py.) A full table is said once per episode: again only after
# SOURCES_FULL_QUIET_S without an eviction.
SOURCES_MAX = 16_384
EVICTION_SAMPLE = 8
SOURCES_FULL_QUIET_S = 60.0
# Packets the kernel dropped for the sensors (receive buffers full: a flood faster than the loop
# reads) are counted (status, metrics) and said once per episode: again only after this long
# without a drop.
SENSOR_DROPS_QUIET_S = 60.0

# SCAN_TRIGGER counts a source's probes per slice of SCAN_TRIGGER_WINDOW (a start time and a
# count each), not one time per probe: a trigger of 20,000 must not cost 20,000 floats a source.
TRIGGER_SLICES = 8

# Distinct ports remembered per source. Enough for any scandetd CountThreshold we accept; a
# source that touches more ports is simply "at least this many".
PORTS_TRACKED_MAX = 64

# Addresses remembered per source that is an IPv6 prefix (IPV6_SOURCE_PREFIX below 128), as a
# 64-bit hash each: those that had their first scan verdict (the last this many), and each
# scan's or OS-probe run's distinct addresses, which its summary counts (past this many:
# "at least"). A scanner that takes a new address of its /64 for every probe cannot grow them;
# they add at most about 1.6 KiB to such a source (the scans of both protocols counted).
ADDRESSES_TRACKED_MAX = 64

# IPV6_SOURCE_PREFIX's shortest prefix: a /32 is a whole provider's (a regional registry's
# smallest allocation to one); shorter would lump unrelated networks into one source.
IPV6_SOURCE_PREFIX_MIN = 32

# Flag patterns remembered per source for OS-probe reports (nmap -O sends about ten).
PATTERNS_TRACKED_MAX = 16

# Sources waiting for their OS-probe summary (OS_PROBE_QUIET), so spoofed probes cannot grow it.
OS_PROBE_PENDING_MAX = 1_024  # also the most scans waiting for their end-of-scan summary
# When either table is full, the source seen least recently makes room, taken among those that
# touched one port while there are any (a spoofed flood), so a real scanner keeps its summary.
# A run waits on its own: a source evicted from the table of sources keeps its summary (about
# 1.5 KiB a run in the worst case above, so at most about 3 MiB for the two tables of 1,024 runs).
# Summaries made in one loop turn: a flood of sources that all go quiet at once would otherwise
# become a thousand summary lines, syslog messages and JSON events in one go. Those that touched
# the most ports go first; the rest wait for the next turns, at most SUMMARIES_READY_MAX of them
# (as many as both tables above hold, each with what its run held: at most about 3 MiB). Past it
# (a flood of sources going quiet faster than the turns send their summaries) those that touched
# the fewest ports are dropped: counted, and said once a second on every alert path.
SUMMARIES_PER_TICK_MAX = 20
SUMMARIES_READY_MAX = 2 * OS_PROBE_PENDING_MAX
# While summaries wait for their turn, the loop turns at least this often (400 summaries a
# second, so a full list goes out in about 5 s), not only every TICK_S with nothing to read.
SUMMARIES_TURN_S = 0.05

# Packets read from one sensor socket per loop turn, so one busy socket cannot starve the others
# or the signal handling.
PACKETS_PER_TURN_MAX = 512

# File descriptors the classic modes leave free for the daemon's own work when they bind one
# socket per port: netlink (addresses, ports, nftables), SQLite (database, WAL, shared memory, for
# the loop and the action worker), the control socket and a client, syslog, the JSON log, mail,
# the metrics page, the port audit, pipes of KILL_* commands. A start that cannot keep these
# free is refused; running out later is logged, never fatal.
DESCRIPTORS_RESERVED = 128

# A turn of the daemon's loop that fails on a bug (any exception but running out of descriptors,
# KeyboardInterrupt and SystemExit), say on a packet no test foresaw, is logged with its
# traceback, counted (loop_errors) and the loop goes on: attacker data must never stop the
# daemon. At most one traceback per LOOP_ERROR_LOG_S, the next says how many failed meanwhile
# (a bug that fails every turn would write two a second). When every turn has failed for
# LOOP_ERRORS_FATAL_S, the loop is broken, not hit by one bad input: the daemon stops with exit
# status 1, for systemd's Restart=on-failure. Less than half the unit's WatchdogSec=30 (the loop
# says WATCHDOG=1 every 15 s): so the daemon says why before systemd's watchdog kills it silently.
LOOP_ERROR_LOG_S = 60.0
LOOP_ERRORS_FATAL_S = 10.0

# How often the kernel filter and the "has a service" view of the ports are refreshed, and the
# local addresses re-read. A probe is always re-checked at the moment it arrives as well.
REFRESH_S = 2.0

# Snapshot length the kernel filter keeps of a packet: IPv4 header with options (60), TCP header
# with options (60), and the start of the payload for probe signatures.
CAPTURE_BYTES = 160

# Socket receive buffer for raw sensors: room for a burst while the loop is busy (set with
# SO_RCVBUFFORCE past net.core.rmem_max as root). A sustained flood faster than the loop reads
# overflows any size: 32 MiB dropped as much as 208 KiB under hping3 --flood (README, "Limits
# under attack").
RAW_RCVBUF_BYTES = 4 * 1024 * 1024

# The classic kernel filter is a chain of port ranges; a port set too fragmented to fit becomes
# "all ports" in the kernel and is filtered in Python instead.
FILTER_RANGES_MAX = 1_000

# A probe from a blocked source reached the sensors (they sit behind our nftables input hook, so
# its element may be gone: `nft flush set`): the kernel is asked about that source's element at
# most once per this, so a blocked scanner that goes on probing costs a netlink request a
# second, not one per packet. A block that ends within this is not asked about: the kernel
# counts set timeouts in whole seconds and may have let its element go already.
ELEMENT_CHECK_S = 1.0

# Removing our line from a file another program keeps appending to (hosts.deny): the file is
# read, edited and replaced again when it changed meanwhile, at most this many times; then the
# removal fails with an error, so a writer that never stops cannot hold the action worker.
FILE_EDIT_TRIES_MAX = 20

# The control socket's name (in STATE_DIR): sockaddr_un's sun_path holds 108 bytes, the final
# NUL included. A longer STATE_DIR is refused when the configuration is read, not at bind().
SOCKET_PATH_BYTES_MAX = 107

# An unblock of many (`unblock --all`, a start finishing interrupted unblocks) ends its blocks
# in the store at least this often: with KILL_ROUTE each undo is an `ip` process (~12 ms), so
# 1,278 blocks take 16 s, and a kill in the middle must not make the next start undo them all
# again. A commit costs a few ms: blocks with nothing slow to undo still end in few commits.
UNBLOCK_COMMIT_S = 1.0

# Block requests waiting for the action worker. A detection storm beyond this is not queued
# (and BLOCKS_PER_MINUTE normally stops it long before).
BLOCK_QUEUE_MAX = 1_024
# Jobs that go ahead of those blocks (respond/jobs.py): `unblock` and `reapply` requests (root's,
# over the control socket), one expiry, one reload, one put-back. Past this, a request is refused
# ("try again"), never the blocks' lane made to wait.
URGENT_JOBS_MAX = 64
# `unblock` through the daemon removes the nftables elements of at most this many blocks at
# once, in the loop, before the action worker's turn (see ResponsePolicy.on_request): a batch of
# this size is a millisecond or two. A wider unblock (`--all` of thousands) leaves it all to the
# worker, so the loop never stalls.
UNBLOCK_AT_ONCE_MAX = 1_024

# The longest a block with a duration lasts, whatever BLOCK_ESCALATION computes for a repeat
# offender: the kernel refuses set element timeouts past about 584 years (in milliseconds), and
# a value that large would be an error on the packet path instead of a block.
BLOCK_SECONDS_MAX = 10 * 365 * 86_400

# Reverse DNS for RESOLVE_HOST: names longer than this are cut. A block waits at most
# RESOLVE_HOST_TIMEOUT_S for the name (a dead name server takes 5 s and more per lookup, and a
# scanner answers for its own PTR records), counted from the start of the block: the lookup runs
# while the actions are carried out and never delays them. At most RESOLVE_QUEUE_MAX lookups
# wait; past that a block goes without a name.
HOSTNAME_MAX = 253
RESOLVE_HOST_TIMEOUT_S = 1.0
RESOLVE_QUEUE_MAX = 64
# The syslog attack lines wait for their source's name the same RESOLVE_HOST_TIMEOUT_S, at most
# HOSTNAMES_WAITING_MAX of them (the burst of attack lines; past it they go out with the
# address). A name is kept for HOSTNAME_KEPT_S for the source's next probes, a failed lookup for
# HOSTNAME_FAILED_KEPT_S, for at most HOSTNAMES_KEPT_MAX sources (about 0.4 KiB each).
HOSTNAMES_WAITING_MAX = 200
HOSTNAME_KEPT_S = 3_600.0
HOSTNAME_FAILED_KEPT_S = 60.0
HOSTNAMES_KEPT_MAX = 4_096

# Attack lines written per second (with a burst of ATTACK_LINES_BURST). Past it, one line a
# second says how many were left out: a flood must not turn into a flood of log writes, which
# would slow the loop down and bury the lines that matter. Blocking is not affected.
ATTACK_LINES_PER_S = 20
ATTACK_LINES_BURST = 200

# What SmartVerify found for a port (free, a service, clients' sockets) holds for this long, so
# a flood to one tripwire port costs one check per interval instead of one per packet.
PORT_FREE_CACHE_S = 0.1
FREE_PORTS_CACHED_MAX = 65_536

# This host's own UDP clients (SNMP, RADIUS, Kerberos, OpenVPN) take their reply and close at
# once, often before the daemon reads its copy of the reply, which then goes to a free port.
# The kernel's notice of each UDP socket it frees (sock_diag's destroy broadcast) leaves from a
# workqueue: measured at 10 us typically and 7.6 ms at worst on two cores with three busy
# loops. A datagram to a free UDP tripwire is judged UDP_CLOSE_NOTICE_S after SmartVerify found
# the port free, with every notice read by then: a UDP probe is reported that much later. At
# most UDP_HELD_MAX datagrams wait; past that (a flood to free ports) the oldest is judged at
# once, with the notices read so far.
UDP_CLOSE_NOTICE_S = 0.05
UDP_HELD_MAX = 4_096
# SmartVerify's bind tests whose close notice has not been read yet, known by their socket
# cookies so that none is taken for a client's close (see net/udpcloses.py): one per UDP port
# tested, and a port is tested again only after PORT_FREE_CACHE_S, so this outlasts every burst
# the loop reads between two reads of the notices. Cookies of notices the kernel lost (ENOBUFS)
# are dropped oldest first. About 100 bytes each.
OWN_TESTS_MAX = 65_536
# A UDP socket that closed is kept (its local port, and the peer if it was connected) for
# CLOSED_UDP_CLIENT_S: a datagram from a closed connected socket's peer is its reply, even one
# that comes after the close (a retransmission, a slow server; conntrack too forgets an
# answered UDP flow after 120 s); a datagram that arrived before an unconnected one closed was
# taken by it. Only this host's programs add entries (a remote host cannot make one), but a
# busy resolver closes thousands of sockets a minute: at most CLOSED_UDP_CLIENTS_MAX are kept
# (about 200 bytes each), the oldest dropped first.
CLOSED_UDP_CLIENT_S = 120.0
CLOSED_UDP_CLIENTS_MAX = 16_384

# Mails waiting for the mail worker; a dead relay can hold back at most this many.
MAIL_QUEUE_MAX = 100

# One delivery (connect, STARTTLS, login, every command and the message) may take at most this
# many SMTP_TIMEOUT in all: SMTP_TIMEOUT bounds each socket operation, and a relay that trickles
# a byte now and then would otherwise hold the mail thread, and every mail behind it, for ever.
MAIL_DELIVERY_TIMEOUTS = 3

# The mail that summarises reports held back by MAIL_PER_HOUR lists at most this many of them
# (then "... and N more"); the rest are in the JSON event log. A flood of scans must not make one
# huge mail, nor grow the list kept in memory until the hour has room.
MAIL_HELD_LISTED_MAX = 20

# The longest a stop waits for queued mail to be sent; what is left is counted and said.
MAIL_STOP_WAIT_S = 15.0

# Mails a relay turned away for now (a 4xx reply, a refused or timed-out connection), waiting to
# be tried again (SMTP_RETRY_DELAY): a dead relay cannot make them grow past this; later ones
# stay in the store, taken from it again when fewer wait.
MAIL_RETRIES_MAX = MAIL_QUEUE_MAX

# Reports kept in the store (mailed or not): the latest this many, and none older than this age
# (removed at start). A flood of scans cannot grow the store without bound.
MAIL_REPORTS_KEPT_MAX = 10_000
MAIL_REPORTS_KEPT_S = 30 * 86_400.0

# Reports not mailed taken from the store at once, at start and whenever the mail thread has
# room (the oldest first; the rest stay in the store until these are done): a long outage
# cannot make one start load thousands of mails.
MAIL_RESUMED_MAX = MAIL_QUEUE_MAX

# The mail thread's stop line names at most this many reports not sent (then "and N more").
MAIL_UNSENT_NAMED_MAX = 10

# JSON probe events written per second (summaries, blocks and caps are always written).
JSON_EVENTS_PER_S = 200
JSON_EVENTS_BURST = 1_000

# Replies from a portmapper (RPCBPROC_DUMP, PMAPPROC_DUMP: the port audit, `portwarden portmap
# check`): a hostile or broken one must not make us read without end or grow memory. A reply
# larger than this (all its TCP fragments together, or one UDP datagram) is refused before it is
# read further or parsed. A version 2 entry is 20 bytes, a version 3 one (with netid, address
# and owner) about 60, so this is room for some 4,000 registrations, far more than any real host
# has.
PORTMAP_REPLY_BYTES_MAX = 256 * 1024
# ... and in at most this many TCP record fragments: a peer sending empty fragments without end
# is refused at once instead of holding the call until its deadline. Senders cut records at
# their buffer size (a few KiB), so a full-size reply needs far fewer.
PORTMAP_REPLY_FRAGMENTS_MAX = PORTMAP_REPLY_BYTES_MAX // 1024

# The port audit's portmapper query. A portmapper that never answers, or a fake one that
# trickles bytes, costs at most this long per transport (TCP, then UDP).
PORTMAP_TIMEOUT_S = 2.0

# `portmap protect` and `unprotect` run one at a time (each reads, plans and writes): one waits
# at most this long for another to finish, which takes well under a second, then gives up with
# an error rather than hang behind a run that is itself stuck (on the xtables lock, say).
PORTMAP_LOCK_WAIT_S = 10.0

# `run` finds STATE_DIR held by `unblock` or `reapply` working without a daemon (a few seconds'
# work on the store at most): it waits this long for it to end before it gives up, naming it.
STATE_DIR_COMMAND_WAIT_S = 5.0

# The shortest AUDIT_INTERVAL (0 is no periodic check): each check asks the portmapper, reads
# every socket and may connect to local listeners, and its findings are news for alert paths
# that are capped per minute; a check every second would be a load, not a watch.
AUDIT_INTERVAL_S_MIN = 10.0

# The shortest SMTP_RETRY_DELAY: every mail turned away is tried again, and said in a warning,
# once per delay; a delay of 0.01 s wrote a thousand warnings in ten seconds and hammered a relay
# that had asked us to wait (greylisting asks for minutes).
SMTP_RETRY_DELAY_S_MIN = 10.0

# The port audit's TCP confirmation: connect() to a local address then close at once. A local
# listener answers in microseconds; a firewall that drops the SYN costs at most this long.
AUDIT_CONNECT_TIMEOUT_S = 1.0

# Distinct sockets the port audit reads per protocol, among those it looks at (on an audited
# address or a wildcard, in its port range, not skipped: the kernel filters out the rest, so a
# flood elsewhere does not count). A local user who opens more than this on the audited
# addresses makes that protocol's check incomplete (an AuditIncomplete finding, and no
# ServiceMissing from it) rather than grow the audit's memory without end: about 10 MiB.
AUDIT_SOCKETS_MAX = 65_536

# Sources refused a block while BLOCKS_MAX is reached, counted once each for the `block-max
# ended` line: a spoofed flood during a long episode must not grow this set, so past this many
# the line says "or more" (the detection table holds no more sources than this at once).
BLOCK_MAX_REFUSED_COUNTED_MAX = SOURCES_MAX

# Sources remembered as having had their alert-only HISTORY_FILE line (HISTORY_ALERT_ONLY, see
# respond/notes.py) while they go on scanning. Each comes with a line, which BLOCKS_PER_MINUTE
# bounds, but spoofed sources that each keep probing would keep their places: past this many the
# least recently seen is forgotten (its next scan gets another line, within BLOCKS_PER_MINUTE),
# never the table grown. About 100 bytes a source: under 2 MiB.
NOTED_SOURCES_MAX = SOURCES_MAX
# Alert-only HISTORY_FILE lines waiting in the store to be written (a HISTORY_FILE that cannot
# be written, e.g. its folder made read-only, keeps them there): at most 2 x BLOCKS_PER_MINUTE
# come a minute, so past this many the oldest go, never the table grown. 10,000 lines are
# over an hour of a spoofed flood at the default rate; a line older than that is past any
# fail2ban findtime anyway.
NOTES_PENDING_MAX = 10_000

# Unblocks reported one by one (log, syslog, JSON) when the loop sees blocks end; past it (an
# `unblock --all` of thousands) one line gives their number, so the loop is not held up.
UNBLOCKS_REPORTED_MAX = 100

# Audit findings reported per check (log, syslog, JSON, mail, status); the rest are counted in
# one line. A local user who opens thousands of sockets must not flood every alert path.
AUDIT_FINDINGS_REPORTED_MAX = 100

# Warnings per check about registrations that may not name a port (made by a user other than
# root): any local user can register thousands with rpcbind, so the rest are counted in one line.
AUDIT_RPC_WARNINGS_MAX = 10

# Addresses and ports that answered like a service, remembered by `portwarden replay`'s first
# pass over a capture (only ports it watches). A capture of a spoofed flood cannot grow it past
# this: about 15 MiB.
REPLAY_SERVICES_MAX = 100_000

# The configuration file and the ignore file are read whole, at start and on every SIGHUP. A
# name pointed at /dev/zero or a huge file must not eat memory: a file larger than this is
# refused (Debian's portsentry.conf is 12 KiB; this leaves room for an ignore list of some
# 200,000 networks). Only regular files are read, so a FIFO cannot stall the daemon either.
CONFIG_FILE_BYTES_MAX = 4 * 1024 * 1024
# Unknown keys, keys set twice, lines skipped and ignore-file entries PortSentry did not honour
# are warnings, one line each (a 2.x key, a typo): a file of 300,000 stray lines (a log pasted
# in by mistake) would flood the log and check-config. The first ones of each kind are said, the
# rest counted in one line.
WARNINGS_OF_A_KIND_MAX = 20

# The metrics page (METRICS_LISTEN): each connection is served in a thread of its own, so an
# idle one never delays a scrape; at most METRICS_CLIENTS_MAX at once (any more is closed at
# once, so idle connections cannot pile up threads), and each is closed METRICS_CLIENT_WAIT_S
# after it was taken in, answered or not: one that sends nothing, sends its request a byte at a
# time or does not read its page holds its slot no longer (a scraper sends its request at once,
# and the page, a few KiB, fits in the socket's buffer).
METRICS_CLIENTS_MAX = 16
METRICS_CLIENT_WAIT_S = 1.0

# Syslog lines waiting for the local syslog socket. syslog(3) blocks until the daemon reading
# /dev/log takes the line; we never block the loop: the lines go through a queue to a sender
# thread that waits for room in the socket (net.unix.max_dgram_qlen is often 10: a burst of
# attack lines overflows it) at most SYSLOG_WAIT_S per line, then drops the line (counted).
# Past SYSLOG_QUEUE_MAX waiting lines (a syslog daemon that hangs) new ones are dropped, so a
# flood holds at most about 1.5 MiB here. At stop or reload the lines left get at most
# SYSLOG_DRAIN_S to go.
SYSLOG_QUEUE_MAX = 1_000
SYSLOG_WAIT_S = 0.25  # a syslog daemon on a busy host may not be scheduled for 20 ms
SYSLOG_DRAIN_S = 2.0
# The longest syslog datagram sent, header included: rsyslog's default maxMessageSize (8096
# bytes, "8k"), the smallest limit of the syslog daemons a Linux host runs by default (journald
# and syslog-ng take more). A longer line (a reload warning that lists many ports) is cut to
# fit and ends with '...'; the daemon's own log has it whole. RFC 3164's 1,024 bytes would cut
# the warnings an administrator most needs to read whole.
SYSLOG_DATAGRAM_BYTES_MAX = 8096

# A reload's warnings sent to syslog one line each (they are all in stderr); the rest are
# counted in one line. A configuration with hundreds of bad ignore lines must not flood syslog.
RELOAD_WARNINGS_SENT_MAX = 20

# EVENT_LOG_MAX_BYTES: no smaller than this. A size of a few bytes would rotate the event log at
# every event, so EVENT_LOG_KEEP generations would hold only the last few events (a scan's
# flood would rotate away its own summary). When a rotation fails (a directory where a
# generation goes), events go on into the current file, and it is tried again each time the
# file has grown by another EVENT_LOG_MAX_BYTES / EVENT_LOG_ROTATE_TRIES: a few renames per
# that much written, not per event.
EVENT_LOG_BYTES_MIN = 64 * 1024
EVENT_LOG_ROTATE_TRIES = 16
# EVENT_LOG_KEEP: no more generations than this. A rotation renames every generation while it
# holds the event log's lock (events wait), so a million would stall the alerts for minutes;
# a thousand 64 KiB files are already more history than the store keeps.
EVENT_LOG_KEEP_MAX = 1_000

# A file edited by rename (hosts.deny, hosts.allow): what another program appended to the old
# file in the moment of the rename is carried over to the new one, up to this much (a few
# lines are expected; more would be another program rewriting the file, not appending).
LATE_APPEND_BYTES_MAX = 65_536
# A program that opened the old file just before the rename writes its line just after: the old
# file is read again this long after the rename, so that line is carried over too (fail2ban
# opens, writes and closes at once; a CI run lost one line in 1,300 appends every 2 ms without).
LATE_APPEND_SETTLE_S = 0.01

# ---------------------------------------------------------------------------------------------
# Limits gathered from the modules that used them (named after what they bound, so that no two
# limits share a name).

# The control socket (control.py), which only root can reach but which the loop itself serves: a
# request is one small JSON object, read up to this size (anything past it is never read), and
# the loop spends at most CONTROL_CLIENT_WAIT_S on one client, whatever it sends, so a client
# that trickles bytes or never reads its answer cannot stall the sensors.
CONTROL_REQUEST_BYTES_MAX = 4096
CONTROL_CLIENT_WAIT_S = 0.5
# The longest `status` (and every other command asking the daemon) waits for its answer (then
# `status` shows the last saved status). The loop answers within a turn, which is bounded; a
# daemon stopped (SIGSTOP) or stuck never does.
CONTROL_ANSWER_WAIT_S = 5.0
# The longest an unblock or reapply waits for the action worker: it comes before the blocks
# waiting their turn, after the job the worker is doing (a command may take KILL_CMD_TIMEOUT), and
# after other unblocks and reapplies asked before it. The work is done even if nobody waits for
# it any more. At most CONTROL_WAITING_MAX connections wait for such an answer at once (more are
# told to try again), so clients cannot pile up open connections in the loop.
CONTROL_ACTION_WAIT_S = 120.0
CONTROL_WAITING_MAX = 16

# A command asking the daemon finds STATE_DIR held but nobody listening on the control socket
# yet: a daemon starting up. It waits this long for the socket, then says what is wrong rather
# than hang behind a daemon that lost its socket.
DAEMON_START_WAIT_S = 10.0
# `run` in the background: the longest the command waits for the daemon to say it is ready (a
# huge restore of blocks takes about 10 s), so a daemon stuck at start cannot hang the boot.
BACKGROUND_READY_WAIT_S = 300.0
# The demo lab (`portwarden lab`, lab/demo.py): the longest it waits for its daemon to be ready,
# and for its clean stop (well under a second), before it gives up or kills it.
LAB_DEMO_READY_WAIT_S = 20.0
LAB_DEMO_STOP_WAIT_S = 5.0

# Netlink requests to the kernel (addresses, routes, sockets, nftables): the kernel answers at
# once; this only bounds a broken or wedged one, so the loop never hangs on it.
NETLINK_ANSWER_WAIT_S = 1.0
# Next-hop groups hold plain next hops only (the kernel refuses a group in a group); a bound all
# the same on how deep the gateway resolution follows them, so that no answer can make it loop.
NEXTHOP_DEPTH_MAX = 4

# The kernel's notices of closed UDP sockets (net/udpcloses.py), one receive buffer at a time.
# Local programs decide how many sockets close: a read from the loop takes at most
# UDP_CLOSES_RECEIVES_MAX receives, so a host closing sockets cannot hold the loop; a read before
# held datagrams are judged (drain) at most UDP_CLOSES_DRAIN_RECEIVES_MAX (about 5 ms of work):
# programs that close sockets faster than that could hold the loop for ever. What is left is read
# next time (an own test's notice left unread is still known by its cookie, see OWN_TESTS_MAX).
UDP_CLOSES_RECEIVE_BYTES = 65_536
UDP_CLOSES_RECEIVES_MAX = 64
UDP_CLOSES_DRAIN_RECEIVES_MAX = 4_096

# The classic-mode listeners (sensors/listener.py): connections the kernel queues on a TCP
# tripwire port before the loop accepts them (more are refused by the kernel, not queued in
# memory), and the bytes read of a datagram to a UDP one (its length is counted up to this and
# its first PAYLOAD_HEAD_BYTES kept; the rest of a larger datagram is dropped by the kernel).
LISTENER_BACKLOG = 128
LISTENER_DATAGRAM_BYTES = 2048
# Bytes of a probe's transport payload kept for probe signatures (net/packet.py): every probe
# record keeps them, so a flood of large packets costs no more memory than one of empty ones.
PAYLOAD_HEAD_BYTES = 16

# `portwarden replay` reads captures from anywhere: a record claiming more than this (tcpdump's
# own snapshot length cap) is corruption, refused before anything that size is read.
PCAP_RECORD_BYTES_MAX = 262_144

# An rpcb entry's strings from a portmapper: netid ("tcp6"), universal address ("::.3.235", at
# most 53 characters for IPv6) and owner ("superuser", a uid). rpcbind takes longer ones from any
# local user, so a longer string is stepped over and leaves only its own entry out (not the whole
# list).
RPCB_STRING_BYTES_MAX = 128
# A UDP query to the portmapper is sent again this often until its deadline (PORTMAP_TIMEOUT_S for
# the port audit: one resend), so that one lost datagram does not fail the query, and a silent
# portmapper is never sent a flood of them.
PORTMAP_UDP_RESEND_S = PORTMAP_TIMEOUT_S / 2
# libwrap reads hosts.allow and hosts.deny a line at a time into a 2048-byte buffer (BUFLEN in
# hosts_access.c) and skips a longer line ("missing newline or line too long"), which would lose
# the rule. Our rule lines stay at half of that, whatever the number of allowed networks.
HOSTS_ALLOW_RULE_LINE_CHARS_MAX = 1000
# `portmap` runs `test -r` as rpcbind's user on the hosts files: one on a hung network file
# system is given up on after this long, instead of hanging the command.
RPCBIND_FILE_TEST_TIMEOUT_S = 10
# `portmap` runs iptables tools with `-w` (wait for the xtables lock): one waiting longer than this
# (another program holding the lock) is given up on with an error naming it.
IPTABLES_TIMEOUT_S = 30

# The periodic port audit's thread (audit/periodic.py): results the loop has not taken yet are at
# most this many (no check is made while there are this many), so a loop that falls behind
# cannot grow them; a stop waits at most AUDIT_STOP_WAIT_S for a check in progress (a check is
# itself bounded by PORTMAP_TIMEOUT_S and AUDIT_CONNECT_TIMEOUT_S).
AUDIT_RESULTS_WAITING_MAX = 4
AUDIT_STOP_WAIT_S = 10.0

# The longest a stop waits for the action worker (UNBLOCK_ON_STOP takes time, KILL_* commands
# KILL_CMD_TIMEOUT each); past it the stop goes on and says what may be incomplete.
ACTION_WORKER_STOP_WAIT_S = 30

# The longest a connection to the store waits for another one's transaction (the loop, the
# action worker, `unblock` and `status` share it), so a stuck holder costs an error, not a hang.
STORE_BUSY_WAIT_S = 30

# KILL_* commands' output (respond/commands.py): the first COMMAND_OUTPUT_KEPT_BYTES are kept
# for the failure line (the rest is read and dropped, so a chatty or hostile command cannot grow
# memory or block on a full pipe); the line shows at most COMMAND_OUTPUT_SHOWN_CHARS of it, the
# action's status records at most COMMAND_OUTPUT_RECORDED_CHARS.
COMMAND_OUTPUT_KEPT_BYTES = 4096
COMMAND_OUTPUT_SHOWN_CHARS = 300
COMMAND_OUTPUT_RECORDED_CHARS = 120

# Untrusted text (banners, names, replies) rendered on one line (text.one_line) is cut at this
# many characters by default, so hostile input cannot make a huge log line; a file name the
# administrator gave is shown whole (PATH_MAX).
SHOWN_CHARS_MAX = 200
PATH_SHOWN_CHARS_MAX = 4096

# `status`: scanners and ports shown, and the most recent active blocks shown (the counts are
# always exact), so a flood of sources or blocks cannot make the output endless.
STATUS_TOP_MAX = 10
STATUS_BLOCKS_SHOWN_MAX = 20

# Putting the blocks back in our nftables table, at start or after a firewall reload took the
# table or its elements (respond/policy.py, _check_table): after a failure (a kernel without
# nf_tables, nft refusing the table) it is tried again after this long, each try a warning, a
# whole batch of elements for the action worker, and an error line when it fails again. At every
# refresh (REFRESH_S) that would flood the log and keep the worker busy with a table that cannot
# be filled; much longer would leave the blocks that have nothing else in force (no route, no
# hosts.deny line) unenforced for longer once nftables works again.
NFT_PUT_BACK_RETRY_S = 30
# The blocks of an address that became protected (a new gateway, name server or address of this
# host) are ended by the action worker; one still active this long after (the worker's job
# failed) is handed to it again. Not at every refresh (REFRESH_S): the job would be queued again
# and again while one waits behind a long job, taking the room of `unblock` and `reapply`
# requests (URGENT_JOBS_MAX), and a failing end would fail at every refresh.
PROTECTED_END_RETRY_S = 60.0

# BLOCKS_PER_MINUTE (and the alert-only HISTORY_FILE lines' budget of the same size,
# respond/budget.py) counts what it allowed in a sliding window of this long: the minute the key
# names. However many spoofed sources a flood brings, at most that many blocks (twice that for
# sources seen on several ports) go to the firewall per window; the refusals are counted and
# said once a whole window has passed with none allowed.
BLOCKS_PER_MINUTE_WINDOW_S = 60.0
# MAIL_PER_HOUR counts the mails tried in a sliding window of this long: the hour the key names.
# The notice that a hold began goes at most once per window too, and a start counts the mails
# the store says were tried in the window before it, so a daemon restarted again and again
# sends no more than the cap.
MAIL_PER_HOUR_WINDOW_S = 3600.0

# The metrics page's accepting thread (http.server's serve_forever) looks for a stop this often:
# a stop, or a reload that moves the page, waits at most this long for it. Shorter would only
# wake an idle thread more often.
METRICS_SHUTDOWN_POLL_S = 0.1

# The longest time a key given in seconds takes (SCAN_INTERVAL, SMTP_TIMEOUT, AUDIT_INTERVAL,
# ...), but the block durations (BLOCK_SECONDS_MAX): a year. A longer one is a mistake
# (milliseconds written as seconds), and a huge one (1e20) would reach the socket and thread
# timeouts it is passed to and overflow there, once the daemon uses it, not be refused with the
# file's line when it is read.
SETTING_SECONDS_MAX = 366 * 86_400
