"""nmap -O's probes as they look on the wire: what the kernel filters (bpf.py) let through to
the sensors and what the engine (detect/probe.py) names. From nmap's osscan2.cc and "TCP/IP
Fingerprinting Methods Supported by Nmap" (nmap.org/book/osdetect-methods.html)."""

from portwarden.net.packet import FIN, PSH, SYN, URG

NMAP_TSVAL = 0xFFFFFFFF  # nmap -O puts this TSval (and TSecr 0) in its SYN and T2-T7 probes
# The TCP options of nmap -O's T2-T7 (IPv4 and IPv6): window scale 10, NOP, MSS 265, timestamp
# (NMAP_TSVAL, 0), SACK permitted. 20 bytes: the TCP header is 40 (data offset 10).
NMAP_T_OPTIONS = bytes.fromhex("03030a01 02040109 080affffffff00000000 0402")
NMAP_ECN_URGENT = 0xF7F5  # nmap's ECN probe: urgent pointer set without URG
NMAP_T3_FLAGS = SYN | FIN | PSH | URG
NMAP_U1_LEN, NMAP_U1_BYTE = 300, ord("C")  # nmap's UDP probe: 300 bytes of 'C'
# The TCP windows of nmap -O's plain SYN probes: the six "SEQ" probes to an open port and T5 to
# a closed one. No client opens a connection with these, so the kernel filter passes SYNs with
# them to any port and their signature is checked in detect/probe.py (see net/bpf.py).
NMAP_SYN_WINDOWS = (1, 4, 16, 63, 512, 31337)
