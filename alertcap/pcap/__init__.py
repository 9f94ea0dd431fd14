"""Streaming pcap/pcapng reader and traffic summary for alert-triggered captures.

Boundary: pure Python domain code (stdlib only, no Azure).  Input is any
binary file-like object with ``.read(n)`` -- seekability is never needed -- and
memory stays bounded whatever the file size.  Output is a JSON-safe dict that
the ``summarise_capture`` activity returns and the notification email renders.

API::

    summarise(stream, *, top=10, alert=None, alert_time=None) -> Summary
        # stream: binary, has .read(n); alert: AlertSignal {metric, value,
        # threshold, operator, fired_at}; alert_time defaults to fired_at
    summarise_path(path, *, top=10, **same) -> Summary
    ChainedCaptures([(name, open), ...])        # several ring files as one stream
    Summary.to_dict() -> dict                    # schema below
    findings(summary_dict, alert=None) -> list   # re-judge a stored summary
    render_text(summary_dict, rows=5) -> str     # verdict, findings, tables (top rows)
    render_html(summary_dict, image_cid="timeline") -> str  # email-safe, escaped
    timeline_png(summary_dict) -> bytes          # attach inline as Content-ID "timeline"
    selectors(summary_dict) -> {name: selector}  # top findings' and conversations' packets
    write_slices(stream, selectors) -> ({name: pcap bytes}, {name: SliceInfo})
    NotACaptureError                             # raised only for a non-capture stream

CLI: ``python -m alertcap.pcap FILE|- [--top N] [--json] [--alert-time T]
[--png OUT] [--slices DIR]`` (exit 2: not a capture, or a bad option).

Schema ``alertcap.summary/2`` (fields only added to ``/1``; times are UNIX
seconds as floats, ``*_iso`` UTC; "bytes" are on-the-wire lengths; lists are
sorted best first and hold at most ``top`` rows):

``schema``
    ``"alertcap.summary/2"``.
``complete`` / ``warnings``
    ``complete`` is false when the file was truncated or corrupt (the summary
    covers the packets before the damage).  ``warnings`` are sentences for
    people: damage, packets too short to decode, approximations.
``source``
    ``format`` ("pcap"/"pcapng"), ``byte_order``, ``timestamp_resolution``
    ("us"/"ns"), ``link_types`` (ints), ``snaplen``, ``bytes_read``.
``packets``, ``bytes``
``start``, ``end``, ``start_iso``, ``end_iso``, ``duration_s``
    First and last packet in file order.
``packets_per_s``, ``bytes_per_s``
    Averages over ``duration_s``; null when the duration is 0.
``ip_versions``
    ``{"ipv4": packets, "ipv6": packets}``.
``protocols``
    ``[{name, packets, bytes, percent}]`` for every protocol seen: IP protocols
    by name ("tcp", "udp", "icmp", "icmpv6", ..., "ip-proto-N"), non-IP frames by
    EtherType ("arp", "ethertype-0x88b5"), and undecodable frames ("link header
    truncated", ...).  Not limited to ``top``.
``top_conversations_by_packets``, ``top_conversations_by_bytes``
    TCP/UDP conversations (5-tuple, both directions together like ``tshark -z
    conv,tcp``): ``{proto, a, a_port, b, b_port, packets, bytes, packets_a_to_b,
    bytes_a_to_b, packets_b_to_a, bytes_b_to_a, retransmissions, aggregated}``.
    A is the endpoint that sent the first packet seen.  ``aggregated`` rows
    (ports null) sum the flows between two hosts that arrived after the flow
    table was full.
``top_host_pairs_by_packets``, ``top_host_pairs_by_bytes``
    Every IP packet by address pair, like ``-z conv,ip``: ``{a, b, packets,
    bytes, packets_a_to_b, bytes_a_to_b, packets_b_to_a, bytes_b_to_a}``.
``top_talkers``
    ``{host, bytes, packets}``: IP hosts by bytes sent.
``top_dst_ports``
    ``{proto, port, packets}``: TCP/UDP destination port of each packet.
``tcp``
    ``{syn, syn_ack, rst, fin, retransmissions, packets,
    retransmission_percent, new_connections_per_s: {peak, peak_at, average,
    seconds_with_syns}}``.  ``syn`` counts SYN without ACK (connection
    attempts); the per-second peak uses whole UTC seconds; ``average`` is
    ``syn / duration_s``.  A retransmission is a segment with data (or SYN/FIN)
    that starts before the highest sequence number already seen in that
    direction of the flow, keep-alives excluded; the percentage is of all TCP
    packets (``packets``).
``changes``
    Null for captures too short to split; else the capture is split at the
    time-slice boundary nearest its middle (see ``tables.py``; within 1/16 of
    the duration): ``{split_at, split_at_iso, first_half_s, second_half_s,
    packets: {first, second} (IP packets), conversations, dst_ports, talkers}``,
    each list
    row carrying ``first``, ``second`` and ``change`` (second - first, in
    packets), sorted by the size of the change.
``limits``
    ``{max_flows, flows_tracked, max_host_pairs, overflow_packets,
    approximate}``: when more than ``max_flows`` directional TCP/UDP flows are
    seen, later flows are counted per host pair (see ``tables.py``), and past
    ``max_host_pairs`` of those per protocol only; totals stay exact.

Added in ``/2``:

``verdict``
    ``{abnormal, headline, lines}``: at most three lines -- what is abnormal,
    who, since when, how sure (or "Nothing abnormal found ..."), the top
    finding's sentence, then the others or the alert's context.
``findings``
    Ranked findings; the fields and the vocabulary of ``kind`` are documented
    in ``findings.py`` (``KINDS``).  Each carries ``names`` for its hosts.
``connections``
    TCP connection states in Zeek's ``conn_state`` vocabulary (``analysis.py``):
    ``{tcp_connections, states, closed, closed_within_1s, top_groups
    (originator, responder, port: connections, states, first, span_s,
    peak_per_s, closed_within_1s, packets, bytes), scanners (one source, one
    target, many ports), sweepers (one source, many hosts, one port),
    syn_targets / syn_target_hosts (SYN, SYN-ACK, RST, unanswered per service
    / per host), rst_senders}``.
``top_conversations_by_retransmissions``
    Conversation rows, as above.  Conversation rows also gain ``a_name`` and
    ``b_name``, talkers ``name`` (null when the capture named nobody).
``local_host``
    The capturing VM (the address in the most packets): ``{host,
    packet_percent, bytes_out, bytes_in, top_outbound, top_inbound}``.
``dns``
    ``{queries, top_query_sources, responses, rcodes, failures,
    failure_percent, top_failed_names, top_names (name, rcode, responses,
    addresses), approximate}``.
``tls_http``
    ``{sni: [{name, server, client_hellos}], http_hosts: [{name, server,
    requests}]}``: the first client data segment of each connection whose SYN
    was seen.
``names``
    ``[{address, name, source}]`` for the addresses in the top tables and the
    findings; source "sni", "http" or "dns" (in that order of preference).
``icmp_unreachable``
    ``{total, top: [{sender, receiver, code, proto, dst, dst_port, count}]}``.
``new_peers``
    Null when the capture is too short to split; else ``{basis ("alert" or
    "halves"), split_at, split_at_iso, peers_before, count, packets,
    packets_after, top: [{host, first_seen, first_seen_iso, packets, bytes}]}``:
    addresses first seen at or after the split (exact first-packet times).
``timeline``
    ``{start, bucket_s, packets_per_s, bytes_per_s, new_connections_per_s,
    alert_at, split_at}``: up to 256 equal buckets over the capture.
``alert_at``, ``alert_at_iso``, ``split_basis``
    The alert time given (null if none) and whether ``changes`` (which gains
    ``basis``) splits at the alert ("alert", the slice boundary nearest it,
    within 1/16 of the capture) or at half time ("halves").

Known limits:

* Conversations are keyed by 5-tuple only; tshark additionally starts a new
  TCP conversation when a closed 5-tuple is reused (a new SYN), we merge them.
* Retransmissions follow Wireshark's basic rule (see ``decode.py``) without
  its out-of-order/fast/spurious split; segments from TCP segmentation offload
  (IP total length 0) are not sequence-tracked.
* No IP reassembly: non-first fragments carry no ports and count under host
  pairs and the protocol mix only.  Tunnels (GRE, VXLAN, IP-in-IP), MPLS and
  PPPoE are counted by protocol/EtherType, not decapsulated.
* ``start``/``end`` are the first and last packet in file order (capinfos
  reports earliest/latest; they differ only for out-of-order captures).
* pcapng is rewritten record by record and is about half as fast as classic
  pcap (Network Watcher writes classic pcap).
"""

from alertcap.pcap.chart import timeline_png
from alertcap.pcap.findings import KINDS, AlertSignal, findings, verdict
from alertcap.pcap.multi import ChainedCaptures
from alertcap.pcap.reader import CaptureReader, NotACaptureError
from alertcap.pcap.render import render_html, render_text
from alertcap.pcap.slices import selectors, write_slices
from alertcap.pcap.summary import SCHEMA, Summary, summarise, summarise_path

__all__ = [
    "KINDS",
    "SCHEMA",
    "AlertSignal",
    "CaptureReader",
    "ChainedCaptures",
    "NotACaptureError",
    "Summary",
    "findings",
    "render_html",
    "render_text",
    "selectors",
    "summarise",
    "summarise_path",
    "timeline_png",
    "verdict",
    "write_slices",
]
