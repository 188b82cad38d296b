"""Which scanning tool sent a packet, from fingerprints its authors left in the headers.

Scanners that send millions of SYNs statelessly must recognise the replies without keeping state,
so each encodes something in fields it controls; those encodings survive to the darknet and name
the tool. The rules, first match wins, apply to IPv4 TCP SYN packets (``flag_class = 'syn'``):

========  ==============================================  =============================================
tool      rule                                            source
========  ==============================================  =============================================
mirai     ``seq == dst``                                  Mirai ``bot/scanner.c``:
                                                          ``tcph->seq = iph->daddr`` (the reply's ACK
                                                          is then ``daddr + 1``)
zmap      ``ip_id == 54321``                              ZMap ``src/probe_modules/packet.c``,
                                                          ``make_ip_header``: ``ip_id = htons(54321)``
masscan   ``ip_id == (dst ^ dport ^ seq) & 0xffff``       masscan ``src/templ-pkt.c``,
                                                          ``template_set_target_ipv4``:
                                                          ``ip_id = ip_them ^ port_them ^ seqno``
========  ==============================================  =============================================

Everything else (other packets, other stacks) has no tool (null). A random packet matches Mirai's
rule with probability 2^-32 and ZMap's or masscan's with 2^-16 each: about 3 in 100,000 untagged
SYNs get a tool they did not use, which is why a source's tool is its packets' majority, not any
single packet's.
"""

from __future__ import annotations

import numpy as np

from iotscope.store.schema import TOOLS
from iotscope.telescope.classify import FLAG

#: Tool codes index ``TOOLS``; ``NO_TOOL`` marks a packet no rule matched (stored as null).
TOOL = {name: np.int8(code) for code, name in enumerate(TOOLS)}
NO_TOOL = np.int8(-1)

#: ZMap's fixed IPv4 identification.
ZMAP_IP_ID = 54321


def tool_codes(columns: dict[str, np.ndarray], flag_codes: np.ndarray) -> np.ndarray:
    """Tool codes (int8, ``NO_TOOL`` where no rule matches) for a block of decoded packets.

    ``columns`` are the decode stage's dense arrays (``ip_version``, ``dst``, ``dport``, ``seq``,
    ``ip_id``); ``flag_codes`` are the block's flag classes (``iotscope.telescope.classify``).
    Three vectorized comparisons, no per-packet Python.
    """
    syn = (np.asarray(flag_codes) == FLAG["syn"]) & (np.asarray(columns["ip_version"]) == 4)
    dst = np.asarray(columns["dst"], dtype=np.uint32)
    seq = np.asarray(columns["seq"], dtype=np.uint32)
    ip_id = np.asarray(columns["ip_id"], dtype=np.uint32)
    dport = np.asarray(columns["dport"], dtype=np.uint32)
    codes = np.full(syn.shape[0], NO_TOOL, dtype=np.int8)
    masscan = syn & (ip_id == ((dst ^ dport ^ seq) & 0xFFFF))
    codes[masscan] = TOOL["masscan"]
    codes[syn & (ip_id == ZMAP_IP_ID)] = TOOL["zmap"]
    codes[syn & (seq == dst)] = TOOL["mirai"]  # assigned last: first rule in the table wins
    return codes


__all__ = ["NO_TOOL", "TOOL", "TOOLS", "ZMAP_IP_ID", "tool_codes"]
