"""A direct subsetter for CID-keyed CFF OpenType fonts (Noto Serif SC / Noto Sans SC and their kin).

fontTools' general subsetter takes 150–400 ms per call on a 31 000-glyph CJK font; issuance needs a
subset in well under 2 ms. This module parses the font once, keeps the raw bytes, and for each subset
only copies what the chosen glyphs need:

- each glyph's Type 2 charstring with every `callsubr`/`callgsubr` inlined (computed once per glyph,
  then cached), so the subset needs no subroutines at all;
- a CID-keyed CFF (Adobe CFF spec, TN 5176; Type 2 charstrings, TN 5177) whose charset keeps the
  ORIGINAL CIDs, so PDF content streams address glyphs by the same CID in every subset (Identity-H);
- only the Font DICTs (FDArray) the glyphs use, their Private DICTs copied without Subrs;
- an OpenType wrapper ('OTTO') with cmap, hmtx, hhea, maxp 0.5, head, OS/2, name and post 3 for OFD
  and for renderers that want a whole font file.

Dropped on purpose: layout tables (GSUB, GPOS, GDEF, BASE), vertical metrics (vhea, vmtx, VORG), the
format 14 cmap (variation sequences) and DSIG. The text we embed is laid out by our own code, one
glyph per character, horizontally.

All offsets inside the CFF are written as 5-byte integers (operator 29), so the length of every DICT
is known before the offsets are, and one pass lays out the whole table.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from os import PathLike
from pathlib import Path

from templates.errors import FontError


@dataclass(frozen=True)
class SubsetFont:
    """An embeddable subset: an OpenType file (for OFD) and its bare CFF table (for PDF)."""

    otf: bytes
    cff: bytes
    cids: dict[str, int]  # character → CID in the CFF (the code PDF content streams use)
    widths: dict[int, int]  # CID → advance in 1/1000 em
    postscript_name: str

# --- CFF DICT operators (CFF spec, Appendix H); two-byte operators are 1200 + second byte ---------
_ESC = 1200
OP_VERSION, OP_NOTICE, OP_FULL_NAME, OP_FAMILY_NAME, OP_WEIGHT = 0, 1, 2, 3, 4
OP_UNIQUE_ID, OP_XUID = 13, 14
OP_CHARSET, OP_ENCODING, OP_CHARSTRINGS, OP_PRIVATE, OP_SUBRS = 15, 16, 17, 18, 19
OP_COPYRIGHT = _ESC + 0
OP_CHARSTRING_TYPE = _ESC + 6
OP_SYNTHETIC_BASE, OP_POSTSCRIPT, OP_BASE_FONT_NAME = _ESC + 20, _ESC + 21, _ESC + 22
OP_ROS, OP_CID_COUNT, OP_UID_BASE = _ESC + 30, _ESC + 34, _ESC + 35
OP_FD_ARRAY, OP_FD_SELECT, OP_FONT_NAME = _ESC + 36, _ESC + 37, _ESC + 38
# Operators whose operand is a string ID (an index into the String INDEX).
_SID_OPERATORS = frozenset(
    {
        OP_VERSION,
        OP_NOTICE,
        OP_FULL_NAME,
        OP_FAMILY_NAME,
        OP_WEIGHT,
        OP_COPYRIGHT,
        OP_POSTSCRIPT,
        OP_BASE_FONT_NAME,
        OP_FONT_NAME,
    }
)
# Top DICT entries the subset writes itself (offsets, counts, identity) or must not keep (unique IDs
# would claim the subset is the whole font).
_TOP_REWRITTEN = frozenset(
    {
        OP_ROS,
        OP_CID_COUNT,
        OP_UID_BASE,
        OP_UNIQUE_ID,
        OP_XUID,
        OP_CHARSET,
        OP_ENCODING,
        OP_CHARSTRINGS,
        OP_PRIVATE,
        OP_FD_ARRAY,
        OP_FD_SELECT,
        OP_SYNTHETIC_BASE,
    }
)
_STANDARD_STRINGS = 391  # SIDs below this name the CFF standard strings (CFF spec, Appendix A)
_DEFAULT_CID_COUNT = 8720  # CFF spec, Table 10

# --- Type 2 charstring operators (TN 5177, Appendix A) -------------------------------------------
_T2_STEMS = frozenset({1, 3, 18, 23})  # hstem, vstem, hstemhm, vstemhm
_T2_MASKS = frozenset({19, 20})  # hintmask, cntrmask
_T2_PATH = frozenset({4, 5, 6, 7, 8, 21, 22, 24, 25, 26, 27, 30, 31})
_T2_CALLSUBR, _T2_RETURN, _T2_ENDCHAR, _T2_SHORTINT, _T2_CALLGSUBR, _T2_ESCAPE = 10, 11, 14, 28, 29, 12
# Escaped operators that only draw (dotsection, hflex, flex, hflex1, flex1). The arithmetic and
# storage operators are left out: no font compiler emits them, and a subroutine index computed at run
# time could not be inlined without a full interpreter.
_T2_ESCAPED_PATH = frozenset({0, 34, 35, 36, 37})
_T2_MAX_SUBR_DEPTH = 10  # TN 5177, Appendix B

# --- sfnt ----------------------------------------------------------------------------------------
_KEPT_TABLES = ("head", "hhea", "OS/2", "name", "post")
_CHECKSUM_MAGIC = 0xB1B0AFBA


class CffSubsetter:
    """One CID-keyed CFF OpenType font, parsed once; `subset` builds embeddable subsets from it.

    Thread-safe: the only mutable state is the cache of desubroutinised charstrings, a dict whose
    entries are written whole and always to the same value, whichever thread computes them first.
    """

    def __init__(self, source: bytes | str | PathLike[str]) -> None:
        if isinstance(source, bytes):
            data = source
            where = "字体数据"
        else:
            where = str(source)
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise FontError(f"无法读取字体文件 {where}：{exc}") from None
        self._where = where
        try:
            self._parse(data)
        except FontError:
            raise
        except (struct.error, IndexError, ValueError, KeyError) as exc:  # a truncated or corrupt file
            raise FontError(f"无法解析字体 {where}：{exc}") from None
        self._charstrings: dict[int, bytes] = {}

    # --- parsing, once per font -----------------------------------------------------------------

    def _parse(self, data: bytes) -> None:
        version, num_tables = struct.unpack_from(">IH", data, 0)
        if version != 0x4F54544F:  # 'OTTO'
            raise FontError(f"字体 {self._where} 不是 CFF 轮廓的 OpenType 字体（.otf）")
        tables: dict[str, bytes] = {}
        for i in range(num_tables):
            tag, _checksum, offset, length = struct.unpack_from(">4sIII", data, 12 + 16 * i)
            if offset + length > len(data):
                raise FontError(f"字体 {self._where} 的 {tag.decode('latin-1')} 表越界")
            tables[tag.decode("latin-1")] = data[offset : offset + length]
        for tag in ("CFF ", "cmap", "hmtx", "maxp", *_KEPT_TABLES):
            if tag not in tables:
                raise FontError(f"字体 {self._where} 缺少 {tag.strip()} 表")
        self._tables = {tag: tables[tag] for tag in _KEPT_TABLES}
        head = tables["head"]
        self.units_per_em: int = struct.unpack_from(">H", head, 18)[0]
        num_glyphs: int = struct.unpack_from(">H", tables["maxp"], 4)[0]
        self.num_glyphs = num_glyphs
        num_metrics: int = struct.unpack_from(">H", tables["hhea"], 34)[0]
        self._metrics = _parse_hmtx(tables["hmtx"], num_metrics, num_glyphs)
        self._cmap = {code: gid for code, gid in _parse_cmap(tables["cmap"]).items() if gid < num_glyphs}
        self._parse_cff(tables["CFF "])
        self.postscript_name = _postscript_name(tables["name"]) or self._cff_name.decode("latin-1")

    def _parse_cff(self, cff: bytes) -> None:
        self._cff = cff
        major, _minor, header_size, _off_size = struct.unpack_from(">BBBB", cff, 0)
        if major != 1:
            raise FontError(f"字体 {self._where} 的 CFF 版本 {major} 不受支持（CFF2 可变字体）")
        names, pos = _read_index(cff, header_size)
        top_dicts, pos = _read_index(cff, pos)
        strings, pos = _read_index(cff, pos)
        gsubr_offsets, gsubr_data, _ = _index_offsets(cff, pos)
        if len(names) != 1 or len(top_dicts) != 1:
            raise FontError(f"字体 {self._where} 的 CFF 含 {len(names)} 个字体，只支持 1 个")
        self._cff_name = names[0]
        self._strings = strings
        self._global_subrs = (gsubr_offsets, gsubr_data, _subr_bias(len(gsubr_offsets) - 1))
        top = _parse_dict(top_dicts[0])
        self._top = top
        top_values = {op: values for op, values, _ in top}
        if OP_ROS not in top_values:
            raise FontError(f"字体 {self._where} 不是 CID 字体（CFF 无 ROS），暂不支持")
        if int(top_values.get(OP_CHARSTRING_TYPE, [2])[0]) != 2:
            raise FontError(f"字体 {self._where} 的字形不是 Type 2 charstring")
        self._cid_count = int(top_values.get(OP_CID_COUNT, [_DEFAULT_CID_COUNT])[0])
        cs_offsets, cs_data, _ = _index_offsets(cff, int(top_values[OP_CHARSTRINGS][0]))
        if len(cs_offsets) - 1 != self.num_glyphs:
            raise FontError(f"字体 {self._where} 的 CFF 字形数与 maxp 不符")
        self._cs_offsets = cs_offsets
        self._cs_data = cs_data
        self._cids = _parse_charset(cff, int(top_values[OP_CHARSET][0]), self.num_glyphs)
        self._fd_of_glyph = _parse_fd_select(cff, int(top_values[OP_FD_SELECT][0]), self.num_glyphs)
        fd_dicts, _ = _read_index(cff, int(top_values[OP_FD_ARRAY][0]))
        self._font_dicts: list[list[tuple[int, list[float], bytes]]] = []
        self._privates: list[bytes] = []  # each FD's Private DICT, re-encoded without Subrs
        self._local_subrs: list[tuple[list[int], int, int]] = []  # offsets, data start, bias
        for raw in fd_dicts:
            entries = _parse_dict(raw)
            self._font_dicts.append([entry for entry in entries if entry[0] != OP_PRIVATE])
            private_op = [values for op, values, _ in entries if op == OP_PRIVATE]
            if not private_op:
                raise FontError(f"字体 {self._where} 的 FDArray 缺少 Private DICT")
            size, offset = (int(v) for v in private_op[0])
            private = _parse_dict(cff[offset : offset + size])
            self._privates.append(b"".join(raw_ops + _op(op) for op, _, raw_ops in private if op != OP_SUBRS))
            subrs = [values for op, values, _ in private if op == OP_SUBRS]
            if subrs:
                offsets, start, _ = _index_offsets(cff, offset + int(subrs[0][0]))
                self._local_subrs.append((offsets, start, _subr_bias(len(offsets) - 1)))
            else:
                self._local_subrs.append(([0], 0, 0))
        if max(self._fd_of_glyph, default=0) >= len(self._font_dicts):
            raise FontError(f"字体 {self._where} 的 FDSelect 指向不存在的 Font DICT")

    # --- public ---------------------------------------------------------------------------------

    def has(self, char: str) -> bool:
        return ord(char) in self._cmap

    def subset(self, chars: Iterable[str]) -> SubsetFont:
        """The subset with .notdef and the glyphs of `chars` (at least one).

        Raises FontError for a character the font lacks: never a tofu box."""
        gid_of: dict[str, int] = {}
        for char in chars:
            gid = self._cmap.get(ord(char)) if len(char) == 1 else None
            if gid is None:
                shown = f"「{char}」(U+{ord(char):04X})" if len(char) == 1 else repr(char)
                raise FontError(f"字体 {self.postscript_name} 不含字符 {shown}")
            gid_of[char] = gid
        if not gid_of:
            # A CFF with .notdef alone is valid, but the OpenType Sanitizer (browsers) refuses it.
            raise FontError("字体子集至少要包含一个字符")
        gids = sorted({0, *gid_of.values()})
        cff = self._build_cff(gids)
        new_gid = {gid: i for i, gid in enumerate(gids)}
        otf = self._build_otf(cff, gids, {ord(c): new_gid[g] for c, g in gid_of.items()})
        cids = {char: self._cids[gid] for char, gid in gid_of.items()}
        scale = 1000 / self.units_per_em
        widths = {self._cids[gid]: round(self._metrics[gid][0] * scale) for gid in gid_of.values()}
        return SubsetFont(otf=otf, cff=cff, cids=cids, widths=widths, postscript_name=self.postscript_name)

    def charstring(self, gid: int) -> bytes:
        """Glyph `gid`'s Type 2 charstring with all subroutine calls inlined (cached)."""
        cached = self._charstrings.get(gid)
        if cached is None:
            cached = self._charstrings[gid] = self._desubroutinise(gid)
        return cached

    # --- charstrings ----------------------------------------------------------------------------

    def _desubroutinise(self, gid: int) -> bytes:
        """Copy the charstring, replacing `n callsubr` / `n callgsubr` by the subroutine's body.

        Operand bytes are copied verbatim; `starts` holds where each operand on the (virtual) stack
        begins in `out`, so a call can take its index back out of `out`. Hint masks need their byte
        count, which depends on how many stems were declared before them (TN 5177, hintmask).
        """
        buf = self._cff
        offsets, data_start = self._cs_offsets, self._cs_data
        pos, end = data_start + offsets[gid], data_start + offsets[gid + 1]
        local_offsets, local_start, local_bias = self._local_subrs[self._fd_of_glyph[gid]]
        global_offsets, global_start, global_bias = self._global_subrs
        out = bytearray()
        out_append = out.append
        starts: list[int] = []
        starts_append = starts.append
        stems = 0
        frames: list[tuple[int, int]] = []
        while True:
            if pos >= end:
                if not frames:
                    break  # a charstring must end with endchar; tolerate one that runs out
                pos, end = frames.pop()
                continue
            b = buf[pos]
            if b >= 32:  # numbers are most of a charstring: keep this branch short
                starts_append(len(out))
                if b <= 246:
                    out_append(b)
                    pos += 1
                elif b <= 254:
                    out_append(b)
                    out_append(buf[pos + 1])
                    pos += 2
                else:
                    out += buf[pos : pos + 5]
                    pos += 5
            elif b in _T2_PATH:
                out_append(b)
                starts.clear()
                pos += 1
            elif b == _T2_SHORTINT:
                starts_append(len(out))
                out += buf[pos : pos + 3]
                pos += 3
            elif b in (_T2_CALLSUBR, _T2_CALLGSUBR):
                if not starts:
                    raise FontError(f"字形 {gid} 的子程序调用缺少编号")
                at = starts.pop()
                index = _t2_number(out, at)
                del out[at:]
                if b == _T2_CALLSUBR:
                    subrs, subrs_start, bias = local_offsets, local_start, local_bias
                else:
                    subrs, subrs_start, bias = global_offsets, global_start, global_bias
                index += bias
                if not 0 <= index < len(subrs) - 1:
                    raise FontError(f"字形 {gid} 调用了不存在的子程序 {index - bias}")
                if len(frames) >= _T2_MAX_SUBR_DEPTH:
                    raise FontError(f"字形 {gid} 的子程序嵌套过深")
                frames.append((pos + 1, end))
                pos, end = subrs_start + subrs[index], subrs_start + subrs[index + 1]
            elif b == _T2_RETURN:
                if not frames:
                    raise FontError(f"字形 {gid} 在子程序外使用了 return")
                pos, end = frames.pop()
            elif b == _T2_ENDCHAR:
                out.append(b)
                break  # also ends the glyph when met inside a subroutine
            elif b in _T2_STEMS:
                stems += len(starts) // 2  # an odd count means the width came first
                out.append(b)
                starts.clear()
                pos += 1
            elif b in _T2_MASKS:
                stems += len(starts) // 2  # operands before a hintmask are an implicit vstem
                size = 1 + (stems + 7) // 8
                out += buf[pos : pos + size]
                starts.clear()
                pos += size
            elif b == _T2_ESCAPE and pos + 1 < end and buf[pos + 1] in _T2_ESCAPED_PATH:
                out += buf[pos : pos + 2]
                starts.clear()
                pos += 2
            else:
                name = f"12 {buf[pos + 1]}" if b == _T2_ESCAPE and pos + 1 < end else str(b)
                raise FontError(f"字形 {gid} 使用了不支持的 Type 2 运算符 {name}")
        return bytes(out)

    # --- the CFF table --------------------------------------------------------------------------

    def _build_cff(self, gids: Sequence[int]) -> bytes:
        charstrings = [self.charstring(gid) for gid in gids]
        cids = [self._cids[gid] for gid in gids]
        old_fds = [self._fd_of_glyph[gid] for gid in gids]
        used_fds = sorted(set(old_fds))
        new_fd = {fd: i for i, fd in enumerate(used_fds)}

        strings: list[bytes] = []
        string_ids: dict[bytes, int] = {}

        def sid(value: bytes) -> int:
            if value not in string_ids:
                string_ids[value] = _STANDARD_STRINGS + len(strings)
                strings.append(value)
            return string_ids[value]

        def copy_entries(entries: list[tuple[int, list[float], bytes]], skip: frozenset[int]) -> bytes:
            parts = []
            for op, values, raw in entries:
                if op in skip:
                    continue
                if op in _SID_OPERATORS:
                    old = int(values[0])
                    raw = _int(old if old < _STANDARD_STRINGS else sid(self._strings[old - _STANDARD_STRINGS]))
                parts.append(raw + _op(op))
            return b"".join(parts)

        # ROS must come first in a CIDFont's Top DICT (TN 5176, section 18).
        ros = _int(sid(b"Adobe")) + _int(sid(b"Identity")) + _int(0) + _op(OP_ROS)
        top_copied = copy_entries(self._top, _TOP_REWRITTEN)
        cid_count = _int(max(self._cid_count, max(cids) + 1)) + _op(OP_CID_COUNT)
        font_dicts = [copy_entries(self._font_dicts[fd], frozenset()) for fd in used_fds]
        privates = [self._privates[fd] for fd in used_fds]

        def top_dict(charset: int, fd_select: int, charstrings_at: int, fd_array: int) -> bytes:
            return b"".join(
                (
                    ros,
                    top_copied,
                    cid_count,
                    _int5(charset) + _op(OP_CHARSET),
                    _int5(fd_select) + _op(OP_FD_SELECT),
                    _int5(charstrings_at) + _op(OP_CHARSTRINGS),
                    _int5(fd_array) + _op(OP_FD_ARRAY),
                )
            )

        header = b"\x01\x00\x04\x04"
        name_index = _index([self._cff_name])
        string_index = _index(strings)
        global_subrs = b"\x00\x00"
        charset = _charset(cids)
        fd_select = _fd_select([new_fd[fd] for fd in old_fds])
        charstring_index = _index(charstrings)
        top_size = len(_index([top_dict(0, 0, 0, 0)]))  # fixed-width offsets: size known up front

        charset_at = len(header) + len(name_index) + top_size + len(string_index) + len(global_subrs)
        fd_select_at = charset_at + len(charset)
        charstrings_at = fd_select_at + len(fd_select)
        fd_array_at = charstrings_at + len(charstring_index)
        # Font DICTs end with `size offset Private`, both as 5-byte integers: lengths known up front.
        fd_array_size = len(_index([d + bytes(11) for d in font_dicts]))
        private_at = fd_array_at + fd_array_size
        with_private = []
        for font_dict, private in zip(font_dicts, privates, strict=True):
            with_private.append(font_dict + _int5(len(private)) + _int5(private_at) + _op(OP_PRIVATE))
            private_at += len(private)
        fd_array = _index(with_private)

        top_index = _index([top_dict(charset_at, fd_select_at, charstrings_at, fd_array_at)])
        return b"".join(
            (
                header,
                name_index,
                top_index,
                string_index,
                global_subrs,
                charset,
                fd_select,
                charstring_index,
                fd_array,
                *privates,
            )
        )

    # --- the OpenType wrapper -------------------------------------------------------------------

    def _build_otf(self, cff: bytes, gids: Sequence[int], cmap: dict[int, int]) -> bytes:
        metrics = [self._metrics[gid] for gid in gids]
        hmtx = struct.pack(f">{2 * len(metrics)}h", *(v for pair in metrics for v in pair))
        hhea = bytearray(self._tables["hhea"][:36])
        struct.pack_into(">H", hhea, 34, len(gids))
        os2 = bytearray(self._tables["OS/2"])
        if len(os2) >= 68:  # usFirstCharIndex, usLastCharIndex: the subset's range, capped at 0xFFFF
            struct.pack_into(">HH", os2, 64, min(min(cmap), 0xFFFF), min(max(cmap), 0xFFFF))
        post = bytearray(self._tables["post"][:32].ljust(32, b"\0"))
        struct.pack_into(">I", post, 0, 0x00030000)  # format 3: no glyph names
        post[16:32] = bytes(16)  # memory usage hints describe the whole font
        head = bytearray(self._tables["head"][:54])
        head[8:12] = bytes(4)  # checkSumAdjustment, set below once the whole file is known
        tables = {
            "CFF ": cff,
            "OS/2": bytes(os2),
            "cmap": _build_cmap(cmap),
            "head": bytes(head),
            "hhea": bytes(hhea),
            "hmtx": hmtx,
            "maxp": struct.pack(">IH", 0x00005000, len(gids)),
            "name": self._tables["name"],
            "post": bytes(post),
        }
        return _sfnt(tables)


# --- reading -------------------------------------------------------------------------------------


def _index_offsets(data: bytes, pos: int) -> tuple[list[int], int, int]:
    """An INDEX's offsets (relative to its data), where its data starts, and where it ends."""
    count = struct.unpack_from(">H", data, pos)[0]
    if count == 0:
        return [0], pos + 2, pos + 2
    off_size = data[pos + 2]
    if not 1 <= off_size <= 4:
        raise FontError(f"CFF INDEX 偏移长度 {off_size} 无效")
    table = data[pos + 3 : pos + 3 + (count + 1) * off_size]
    if off_size == 3:
        offsets = [int.from_bytes(table[i : i + 3], "big") - 1 for i in range(0, len(table), 3)]
    else:
        offsets = [v - 1 for v in struct.unpack(f">{count + 1}{' BH I'[off_size]}", table)]
    data_start = pos + 3 + (count + 1) * off_size
    if offsets[0] != 0 or any(a > b for a, b in pairwise(offsets)):
        raise FontError("CFF INDEX 偏移无效")
    if data_start + offsets[-1] > len(data):
        raise FontError("CFF INDEX 越界")
    return offsets, data_start, data_start + offsets[-1]


def _read_index(data: bytes, pos: int) -> tuple[list[bytes], int]:
    offsets, start, end = _index_offsets(data, pos)
    return [data[start + a : start + b] for a, b in pairwise(offsets)], end


def _parse_dict(data: bytes) -> list[tuple[int, list[float], bytes]]:
    """DICT entries in order: (operator, operand values, operand bytes as written)."""
    entries: list[tuple[int, list[float], bytes]] = []
    values: list[float] = []
    start = pos = 0
    while pos < len(data):
        b = data[pos]
        if b <= 21:
            if b == 12:
                op = _ESC + data[pos + 1]
                size = 2
            else:
                op, size = b, 1
            entries.append((op, values, data[start:pos]))
            values = []
            pos += size
            start = pos
        elif b == 28:
            values.append(struct.unpack_from(">h", data, pos + 1)[0])
            pos += 3
        elif b == 29:
            values.append(struct.unpack_from(">i", data, pos + 1)[0])
            pos += 5
        elif b == 30:
            value, pos = _real(data, pos + 1)
            values.append(value)
        elif 32 <= b <= 246:
            values.append(b - 139)
            pos += 1
        elif 247 <= b <= 250:
            values.append((b - 247) * 256 + data[pos + 1] + 108)
            pos += 2
        elif 251 <= b <= 254:
            values.append(-(b - 251) * 256 - data[pos + 1] - 108)
            pos += 2
        else:
            raise FontError(f"CFF DICT 含无效字节 {b}")
    return entries


def _real(data: bytes, pos: int) -> tuple[float, int]:
    text = ""
    while True:
        byte = data[pos]
        pos += 1
        for nibble in (byte >> 4, byte & 0xF):
            if nibble == 0xF:
                return (float(text) if text else 0.0), pos
            text += "0123456789.EE?-?"[nibble] + ("-" if nibble == 0xC else "")


def _subr_bias(count: int) -> int:
    return 107 if count < 1240 else 1131 if count < 33900 else 32768


def _t2_number(data: bytearray, pos: int) -> int:
    b = data[pos]
    if 32 <= b <= 246:
        return b - 139
    if 247 <= b <= 250:
        return (b - 247) * 256 + data[pos + 1] + 108
    if 251 <= b <= 254:
        return -(b - 251) * 256 - data[pos + 1] - 108
    if b == 28:
        return int(struct.unpack_from(">h", data, pos + 1)[0])
    return int(struct.unpack_from(">i", data, pos + 1)[0]) >> 16  # 16.16 fixed


def _parse_charset(cff: bytes, offset: int, num_glyphs: int) -> list[int]:
    """GID → CID (for CIDFonts the charset holds CIDs, not SIDs)."""
    if offset <= 2:
        raise FontError("CID 字体不能使用预定义 charset")
    fmt = cff[offset]
    pos = offset + 1
    cids = [0]
    if fmt == 0:
        cids += struct.unpack_from(f">{num_glyphs - 1}H", cff, pos)
    elif fmt in (1, 2):
        while len(cids) < num_glyphs:
            if fmt == 1:
                first, left = struct.unpack_from(">HB", cff, pos)
                pos += 3
            else:
                first, left = struct.unpack_from(">HH", cff, pos)
                pos += 4
            cids.extend(range(first, first + left + 1))
    else:
        raise FontError(f"CFF charset 格式 {fmt} 无效")
    if len(cids) != num_glyphs:
        raise FontError("CFF charset 与字形数不符")
    return cids


def _parse_fd_select(cff: bytes, offset: int, num_glyphs: int) -> bytes:
    """GID → FD index, as one byte per glyph."""
    fmt = cff[offset]
    if fmt == 0:
        return cff[offset + 1 : offset + 1 + num_glyphs]
    if fmt != 3:
        raise FontError(f"CFF FDSelect 格式 {fmt} 不受支持")
    count = struct.unpack_from(">H", cff, offset + 1)[0]
    fds = bytearray()
    for i in range(count):
        first, fd, next_first = struct.unpack_from(">HBH", cff, offset + 3 + 3 * i)
        if first != len(fds) or next_first < first:
            raise FontError("CFF FDSelect 范围无效")
        fds += bytes([fd]) * (next_first - first)
    if len(fds) != num_glyphs:
        raise FontError("CFF FDSelect 与字形数不符")
    return bytes(fds)


def _parse_hmtx(hmtx: bytes, num_metrics: int, num_glyphs: int) -> list[tuple[int, int]]:
    """(advance, lsb) per glyph; glyphs past numberOfHMetrics repeat the last advance."""
    if not 1 <= num_metrics <= num_glyphs:
        raise FontError("hhea.numberOfHMetrics 无效")
    pairs = list(struct.iter_unpack(">Hh", hmtx[: 4 * num_metrics]))
    last = pairs[-1][0]
    rest = num_glyphs - num_metrics
    lsbs = struct.unpack_from(f">{rest}h", hmtx, 4 * num_metrics)
    return pairs + [(last, lsb) for lsb in lsbs]


def _parse_cmap(cmap: bytes) -> dict[int, int]:
    """Code point → GID from the best Unicode subtable (format 12 if there is one, else format 4)."""
    _version, count = struct.unpack_from(">HH", cmap, 0)
    subtables: dict[int, int] = {}
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", cmap, 4 + 8 * i)
        if (platform, encoding) in ((3, 10), (0, 4), (0, 6), (3, 1), (0, 3)):
            subtables.setdefault(struct.unpack_from(">H", cmap, offset)[0], offset)
    if 12 in subtables:
        pos = subtables[12]
        groups = struct.unpack_from(">I", cmap, pos + 12)[0]
        mapping: dict[int, int] = {}
        for start, end, gid in struct.iter_unpack(">III", cmap[pos + 16 : pos + 16 + 12 * groups]):
            for code in range(start, min(end, 0x10FFFF) + 1):
                if gid + code - start:
                    mapping[code] = gid + code - start
        return mapping
    if 4 in subtables:
        return _parse_cmap4(cmap, subtables[4])
    raise FontError("字体缺少 Unicode cmap（格式 4 或 12）")


def _parse_cmap4(cmap: bytes, pos: int) -> dict[int, int]:
    seg_count = struct.unpack_from(">H", cmap, pos + 6)[0] // 2
    ends = struct.unpack_from(f">{seg_count}H", cmap, pos + 14)
    starts = struct.unpack_from(f">{seg_count}H", cmap, pos + 16 + 2 * seg_count)
    deltas = struct.unpack_from(f">{seg_count}H", cmap, pos + 16 + 4 * seg_count)
    range_at = pos + 16 + 6 * seg_count
    range_offsets = struct.unpack_from(f">{seg_count}H", cmap, range_at)
    mapping: dict[int, int] = {}
    for i in range(seg_count):
        for code in range(starts[i], min(ends[i], 0xFFFE) + 1):
            if range_offsets[i] == 0:
                gid = (code + deltas[i]) & 0xFFFF
            else:
                at = range_at + 2 * i + range_offsets[i] + 2 * (code - starts[i])
                gid = struct.unpack_from(">H", cmap, at)[0]
                gid = (gid + deltas[i]) & 0xFFFF if gid else 0
            if gid:
                mapping[code] = gid
    return mapping


def _postscript_name(name: bytes) -> str | None:
    _format, count, strings_at = struct.unpack_from(">HHH", name, 0)
    found: dict[int, str] = {}
    for i in range(count):
        platform, encoding, _language, name_id, length, offset = struct.unpack_from(">6H", name, 6 + 12 * i)
        if name_id != 6:
            continue
        raw = name[strings_at + offset : strings_at + offset + length]
        if platform == 3 and encoding in (0, 1, 10):
            found.setdefault(3, raw.decode("utf-16-be", "replace"))
        elif platform == 1 and encoding == 0:
            found.setdefault(1, raw.decode("latin-1"))
    return found.get(3) or found.get(1)


# --- writing -------------------------------------------------------------------------------------


def _op(op: int) -> bytes:
    return bytes((12, op - _ESC)) if op >= _ESC else bytes((op,))


def _int(value: int) -> bytes:
    """The shortest DICT encoding of an integer (CFF spec, Table 3)."""
    if -107 <= value <= 107:
        return bytes((value + 139,))
    if 108 <= value <= 1131:
        value -= 108
        return bytes((247 + (value >> 8), value & 0xFF))
    if -1131 <= value <= -108:
        value = -value - 108
        return bytes((251 + (value >> 8), value & 0xFF))
    if -32768 <= value <= 32767:
        return b"\x1c" + struct.pack(">h", value)
    return _int5(value)


def _int5(value: int) -> bytes:
    """A fixed-width (5-byte) DICT integer, for offsets and sizes."""
    return b"\x1d" + struct.pack(">i", value)


def _index(items: Sequence[bytes]) -> bytes:
    if not items:
        return b"\x00\x00"
    offsets = [1]
    for item in items:
        offsets.append(offsets[-1] + len(item))
    last = offsets[-1]
    off_size = 1 if last < 0x100 else 2 if last < 0x10000 else 3 if last < 0x1000000 else 4
    if off_size == 3:
        table = b"".join(v.to_bytes(3, "big") for v in offsets)
    else:
        table = struct.pack(f">{len(offsets)}{' BH I'[off_size]}", *offsets)
    return struct.pack(">HB", len(items), off_size) + table + b"".join(items)


def _charset(cids: Sequence[int]) -> bytes:
    """Format 2 (ranges) when it is shorter, else format 0 (one CID per glyph); .notdef is implied."""
    rest = cids[1:]
    ranges: list[list[int]] = []
    for cid in rest:
        if ranges and ranges[-1][0] + ranges[-1][1] + 1 == cid:
            ranges[-1][1] += 1
        else:
            ranges.append([cid, 0])
    if 4 * len(ranges) < 2 * len(rest):
        return b"\x02" + b"".join(struct.pack(">HH", first, left) for first, left in ranges)
    return b"\x00" + struct.pack(f">{len(rest)}H", *rest)


def _fd_select(fds: Sequence[int]) -> bytes:
    """Format 3: runs of glyphs in the same Font DICT, then a sentinel (the glyph count)."""
    ranges = [(gid, fd) for gid, fd in enumerate(fds) if gid == 0 or fds[gid - 1] != fd]
    body = b"".join(struct.pack(">HB", gid, fd) for gid, fd in ranges)
    return b"\x03" + struct.pack(">H", len(ranges)) + body + struct.pack(">H", len(fds))


def _build_cmap(mapping: dict[int, int]) -> bytes:
    """A (3,1) format 4 subtable for the BMP, and a (3,10) format 12 one when a char lies beyond it."""
    codes = sorted(mapping)
    subtables = [(1, _cmap4([c for c in codes if c <= 0xFFFF], mapping))]
    if codes and codes[-1] > 0xFFFF:
        subtables.append((10, _cmap12(codes, mapping)))
    header = struct.pack(">HH", 0, len(subtables))
    offset = 4 + 8 * len(subtables)
    records = b""
    for encoding, table in subtables:
        records += struct.pack(">HHI", 3, encoding, offset)
        offset += len(table)
    return header + records + b"".join(table for _, table in subtables)


def _cmap4(codes: list[int], mapping: dict[int, int]) -> bytes:
    # Runs of consecutive codes; a run whose glyphs follow its codes one for one needs only an idDelta,
    # any other run lists its glyphs in glyphIdArray.
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][-1] + 1 == code:
            runs[-1].append(code)
        else:
            runs.append([code])
    seg_count = len(runs) + 1  # plus the closing 0xFFFF segment
    ends, starts, deltas, range_offsets = [], [], [], []
    glyph_ids: list[int] = []
    for i, run in enumerate(runs):
        starts.append(run[0])
        ends.append(run[-1])
        delta = mapping[run[0]] - run[0]
        if all(mapping[code] - code == delta for code in run):
            deltas.append(delta & 0xFFFF)
            range_offsets.append(0)
        else:
            deltas.append(0)
            range_offsets.append(2 * (seg_count - i + len(glyph_ids)))
            glyph_ids.extend(mapping[code] for code in run)
    starts.append(0xFFFF)
    ends.append(0xFFFF)
    deltas.append(1)
    range_offsets.append(0)
    length = 16 + 8 * seg_count + 2 * len(glyph_ids)
    if length > 0xFFFF:
        raise FontError("子集字符过多，cmap 格式 4 放不下")
    entry_selector = seg_count.bit_length() - 1
    search_range = 2 << entry_selector
    n = seg_count
    return b"".join(
        (
            struct.pack(">7H", 4, length, 0, 2 * n, search_range, entry_selector, 2 * n - search_range),
            struct.pack(f">{n}H", *ends),
            b"\x00\x00",
            struct.pack(f">{n}H", *starts),
            struct.pack(f">{n}H", *deltas),
            struct.pack(f">{n}H", *range_offsets),
            struct.pack(f">{len(glyph_ids)}H", *glyph_ids),
        )
    )


def _cmap12(codes: list[int], mapping: dict[int, int]) -> bytes:
    groups: list[list[int]] = []  # [first code, last code, first glyph]
    for code in codes:
        gid = mapping[code]
        if groups and groups[-1][1] + 1 == code and groups[-1][2] + code - groups[-1][0] == gid:
            groups[-1][1] = code
        else:
            groups.append([code, code, gid])
    body = b"".join(struct.pack(">III", *group) for group in groups)
    return struct.pack(">HHIII", 12, 0, 16 + len(body), 0, len(groups)) + body


def _checksum(data: bytes) -> int:
    if len(data) % 4:
        data += bytes(4 - len(data) % 4)
    words: tuple[int, ...] = struct.unpack(f">{len(data) // 4}I", data)
    return sum(words) & 0xFFFFFFFF


def _sfnt(tables: dict[str, bytes]) -> bytes:
    """An 'OTTO' file: directory sorted by tag, tables 4-byte aligned, checksums and head adjustment."""
    tags = sorted(tables)
    count = len(tags)
    entry_selector = count.bit_length() - 1
    search_range = 16 << entry_selector
    directory = [struct.pack(">IHHHH", 0x4F54544F, count, search_range, entry_selector, 16 * count - search_range)]
    offset = 12 + 16 * count
    body = []
    total = 0
    for tag in tags:
        data = tables[tag]
        checksum = _checksum(data)
        total += checksum
        directory.append(struct.pack(">4sIII", tag.encode("latin-1"), checksum, offset, len(data)))
        padded = data + bytes(-len(data) % 4)
        body.append(padded)
        offset += len(padded)
    head_directory = b"".join(directory)
    total = (total + _checksum(head_directory)) & 0xFFFFFFFF
    font = bytearray(head_directory + b"".join(body))
    head_at = struct.unpack_from(">I", head_directory, 12 + 16 * tags.index("head") + 8)[0]
    struct.pack_into(">I", font, head_at + 8, (_CHECKSUM_MAGIC - total) & 0xFFFFFFFF)
    return bytes(font)
