"""The tree kept as tiles (C2SP tlog-tiles, https://c2sp.org/tlog-tiles): tile level L holds the
hashes of tree level 8·L, 256 to a tile; a tile's root is the next tile level's entry.

Paths: `tile/<L>/<N>` for a full tile, `tile/<L>/<N>.p/<W>` for the first W hashes of the
rightmost one, and `tile/entries/<N>[.p/<W>]` for the leaves themselves (each a big-endian
uint16 length and the bytes). N is written in groups of three digits, all but the last with an
`x` prefix: 1234067 → x001/x234/067.

`TileNodes` answers `verification.merkle`'s node oracle from tiles for one tree size. A tile
truncated to a width never changes (the log only appends), so every tile read is kept per
process, with the hashes inside it that proofs ask for.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable

from verification.merkle import TreeHasher

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
_INDEX_PART = re.compile(r"^(?:x\d{3}/)*\d{3}$")

TileLoader = Callable[[int, int], bytes]  # (tile level, tile index) -> the stored hashes (may be longer)


class TileError(ValueError):
    """A tile path that does not parse, or a tile the store cannot give at the width asked."""


def encode_index(index: int) -> str:
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def tile_path(level: int | str, index: int, width: int) -> str:
    """The path of a tile (level an int, or "entries") holding `width` of 256 entries."""
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{level}/{encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> tuple[str, int, int]:
    """`<L or entries>/<N>[.p/<W>]` (after `tile/`) -> (level text, index, width)."""
    level, _, rest = path.partition("/")
    width = TILE_WIDTH
    if ".p/" in rest:
        rest, _, width_text = rest.partition(".p/")
        if not width_text.isdigit() or not 0 < int(width_text) < TILE_WIDTH or width_text.startswith("0"):
            raise TileError("a partial tile's width is 1 to 255")
        width = int(width_text)
    canonical_level = level == "entries" or (level.isdigit() and str(int(level)) == level and int(level) < 64)
    if not _INDEX_PART.fullmatch(rest) or not canonical_level:
        raise TileError("not a tile path")
    index = int(rest.replace("x", "").replace("/", ""))
    if encode_index(index) != rest:  # one spelling per tile: x000/001 is not 001
        raise TileError("not a tile path")
    return level, index, width


def tile_width(count: int, index: int) -> int:
    """How many of tile `index`'s 256 places `count` entries of its level fill (0: none)."""
    return max(0, min(TILE_WIDTH, count - index * TILE_WIDTH))


class _Expanded:
    """A tile's hashes and the perfect subtrees inside it: levels[h][i] hashes 2**h entries."""

    __slots__ = ("levels",)

    def __init__(self, hasher: TreeHasher, data: bytes) -> None:
        level = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        self.levels = [level]
        while len(level) > 1:
            level = [hasher.node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)


class TileCache:
    """Tiles read at a width, kept per process (bounded; the least recently used go first)."""

    def __init__(self, hasher: TreeHasher, capacity: int = 2048) -> None:
        self.hasher = hasher
        self.capacity = capacity
        self._tiles: OrderedDict[tuple[int, int, int], _Expanded] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, level: int, index: int, width: int, load: TileLoader) -> _Expanded:
        key = (level, index, width)
        with self._lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                return tile
        data = load(level, index)
        if len(data) < width * HASH_SIZE:
            raise TileError(f"tile {level}/{index} has {len(data) // HASH_SIZE} hashes, {width} needed")
        tile = _Expanded(self.hasher, data[: width * HASH_SIZE])
        with self._lock:
            self._tiles[key] = tile
            while len(self._tiles) > self.capacity:
                self._tiles.popitem(last=False)
        return tile

    def clear(self) -> None:
        with self._lock:
            self._tiles.clear()


class TileNodes:
    """The node oracle (`verification.merkle.NodeReader`) of the tree of `size` leaves."""

    def __init__(self, cache: TileCache, size: int, load: TileLoader) -> None:
        self.cache, self.size, self.load = cache, size, load

    def __call__(self, level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # the first hash of tile level `tile_level` this node covers
        count = self.size >> (TILE_HEIGHT * tile_level)  # hashes at that tile level
        if first + (1 << height) > count:
            raise TileError(f"node {level}/{index} is not in a tree of size {self.size}")
        tile_index = first >> TILE_HEIGHT
        tile = self.cache.get(tile_level, tile_index, tile_width(count, tile_index), self.load)
        return tile.levels[height][(first & (TILE_WIDTH - 1)) >> height]
