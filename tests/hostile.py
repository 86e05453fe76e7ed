"""Hostile files for the tests, made once: PNGs whose header claims more pixels than the file holds (image bombs).

Plain builders, imported by name as ``tiny`` is (``from hostile import claimed_png``).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def claimed_png(path: Path, width: int, height: int, colour: bool = True, rows: int | None = None) -> Path:
    """A PNG whose header says ``width`` x ``height`` (8-bit RGB, or grey): all ``rows`` rows of zeros, compressed
    (every row by default: a real bomb, about 1/1000 of its decoded size; fewer: a small truncated file)."""
    channels = 3 if colour else 1
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    row = b"\0" * (1 + width * channels)  # filter byte 0, then the pixels
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path
