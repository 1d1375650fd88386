"""Reading text input files: the encoding a byte-order mark declares, and where an undecodable byte is."""

from __future__ import annotations

import codecs
from pathlib import Path

#: Byte-order marks and the codec that reads (and drops) each; UTF-32 first, its LE mark starts like UTF-16's.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CHUNK = 64 * 1024


def input_encoding(path: Path, configured: str) -> str:
    """The encoding to read ``path`` with: the one its byte-order mark declares, else ``configured``.

    A mark is decisive: read as UTF-8 or cp1252, a UTF-16 file would give records full of NUL characters.
    """
    with open(path, "rb") as file:
        start = file.read(4)
    for bom, encoding in _BOMS:
        if start.startswith(bom):
            return encoding
    return configured


def decode_problem(path: Path, encoding: str) -> str:
    """Where and why ``path`` is not valid ``encoding``: ``people.csv:51: byte 0xe9 is not valid utf-8 (...)``.

    Called after a read failed: text-mode reading decodes ahead in blocks, so the exception it raises does not
    know the line. This pass decodes the bytes again, counting line breaks as the sources do (``\\n``,
    ``\\r\\n`` and a lone ``\\r``).
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    breaks, carriage_return = 0, False
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                text = exc.object[: exc.start].decode(exc.encoding, "replace")
                breaks += _line_breaks(text, carriage_return)
                byte = exc.object[exc.start : exc.start + 1].hex()
                return f"{path}:{breaks + 1}: byte 0x{byte} is not valid {encoding} ({exc.reason})"
            breaks += _line_breaks(text, carriage_return)
            carriage_return = text.endswith("\r")
    return f"{path} is not valid {encoding}"


def _line_breaks(text: str, after_carriage_return: bool) -> int:
    count = text.count("\n") + text.count("\r") - text.count("\r\n")
    # A "\r\n" split between two blocks was counted once for its "\r" already.
    return count - 1 if after_carriage_return and text.startswith("\n") else count
