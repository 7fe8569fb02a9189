"""OSC on the wire: strict parsing of one message (python-osc's is lenient for old senders).

Bundles are walked by the server (:mod:`aether_rt.osc`), which needs their time tags;
building replies and feedback uses python-osc's builders directly.
"""

from __future__ import annotations

import struct

from pythonosc import osc_message
from pythonosc.osc_message import OscMessage
from pythonosc.parsing import osc_types

MALFORMED = (osc_types.ParseError, osc_message.ParseError, ValueError, IndexError, UnicodeError, struct.error)
_FIXED_SIZE = {"i": 4, "f": 4, "r": 4, "m": 4, "c": 4, "d": 8, "h": 8, "t": 8}
_NO_DATA = set("TFNI[]")


def _padded_end(data: bytes, start: int) -> int:
    """End of the 0-terminated, 4-byte padded string at ``start``."""
    end = data.index(b"\x00", start)  # ValueError if unterminated
    return (end // 4 + 1) * 4


def parse_message(data: bytes) -> OscMessage:
    """One OSC message, strictly: the type tags must be present and account for every byte.

    python-osc's parser is lenient for old senders (a missing type tag string, a
    truncated last number read as padding); here those are malformed.

    Raises:
        ValueError: malformed (also python-osc's ParseError and UnicodeError for bad strings).

    """
    if len(data) % 4:
        raise ValueError(f"{len(data)} bytes is not a multiple of 4")
    index = _padded_end(data, 0)
    if data[index : index + 1] != b",":
        raise ValueError("no type tag string")
    tags_end = _padded_end(data, index)
    tags = data[index + 1 : data.index(b"\x00", index)].decode("ascii")
    index = tags_end
    for tag in tags:
        if tag in _FIXED_SIZE:
            index += _FIXED_SIZE[tag]
        elif tag in "sS":
            index = _padded_end(data, index)
        elif tag == "b":
            (size,) = struct.unpack(">i", data[index : index + 4])
            if size < 0:
                raise ValueError("a negative blob size")
            index += 4 + (size + 3) // 4 * 4
        elif tag not in _NO_DATA:
            raise ValueError(f"unknown type tag {tag!r}")
        if index > len(data):
            raise ValueError("the arguments are shorter than their type tags say")
    if index != len(data):
        raise ValueError(f"{len(data) - index} bytes after the last argument")
    return OscMessage(data)
