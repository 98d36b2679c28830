"""Memory for image decodes: what normalising one image needs, known from its header before a pixel is decoded,
and the process-wide reservation that keeps all running decodes within GLIMPSE_IMAGE_DECODE_MEMORY_BYTES.

`decode_memory` follows normalise.py's steps and counts what is alive at once in each; its largest step is what
a decode reserves. `sizing.decode_memory_bytes(settings.decode_budget)` is what the decodes may hold in total: the
figure a pod's memory limit is derived from (`sizing.memory_limit_mib`).
"""

from __future__ import annotations

import asyncio
import ctypes
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter

from ..errors import TooLarge, Unavailable

T = TypeVar("T")

MiB = 1024 * 1024
# Pillow keeps every mode it converts to or reduces in (RGB, RGBa) in 4 bytes a pixel.
WORK_PIXEL_BYTES = 4
# Reduced and resized as they are; any other mode is converted to RGB or RGBa a strip at a time, so a full-size
# copy in a second mode is never made.
NATIVE_MODES = frozenset({"RGB", "L"})
STRIP_BYTES = 4 * MiB  # one strip of the converted image
# WebP's decoder holds two full canvases and hands the frame over as a third buffer, all RGBA.
WEBP_SCRATCH_PIXEL_BYTES = 12
# libheif (through pillow-heif) decodes into a full-size interleaved RGB(A) buffer of its own, copied into Pillow's
# image and released after: measured for 12 MP photos, 3.0 bytes a pixel beyond Pillow's 4 for an 8-bit HEIC,
# 3.5 for a 10-bit one (decoded to 8 bits), besides the file itself.
HEIF_SCRATCH_PIXEL_BYTES = 4
CODEC_OVERHEAD_BYTES = 4 * MiB  # codec state, palettes, tables
# glibc raises its mmap threshold to 32 MiB after the first big free; from then on freed images and uploads stay
# resident in its arenas (measured: +250 MiB after a burst). A fixed threshold keeps them mmapped, returned on free.
MMAP_THRESHOLD_BYTES = 1 * MiB
M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def pixel_bytes(mode: str) -> int:
    """Bytes Pillow keeps a pixel of `mode` in: 1 for 1, L and P, 2 for I;16, else 4 (RGB too, and LA)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def fit(width: int, height: int, max_edge: int) -> tuple[int, int]:
    """The size an image is normalised to: its own, or scaled down so that its long edge is `max_edge`."""
    if max(width, height) <= max_edge:
        return width, height
    if width >= height:
        return max_edge, max(1, round(height * max_edge / width))
    return max(1, round(width * max_edge / height)), max_edge


def reduce_factors(size: tuple[int, int], target: tuple[int, int]) -> tuple[int, int]:
    """Whole factors to box-reduce by before the final resampling, which then shrinks by less than two."""
    return max(1, size[0] // target[0]), max(1, size[1] // target[1])


def strip_rows(width: int, factor_y: int) -> int:
    """Rows per strip: about STRIP_BYTES of converted pixels, a multiple of the vertical reduce factor."""
    return max(factor_y, STRIP_BYTES // (width * WORK_PIXEL_BYTES) // factor_y * factor_y)


def jpeg_coefficient_bytes(width: int, height: int, sampling: Sequence[tuple[int, int]]) -> int:
    """libjpeg's whole-image DCT coefficient buffer (progressive or multi-scan JPEGs), at full size even when the
    image is decoded at a reduced scale: 2 bytes for each of the 64 coefficients of every 8x8 block of each component.
    `sampling` is each component's (horizontal, vertical) sampling factor."""
    max_h = max((h for h, _ in sampling), default=1)
    max_v = max((v for _, v in sampling), default=1)
    blocks = sum((math.ceil(width * h / max_h / 8) + h) * (math.ceil(height * v / max_v / 8) + v) for h, v in sampling)
    return blocks * 64 * 2


@dataclass(frozen=True)
class DecodeShape:
    """An image as it will be decoded (after a JPEG's reduced-scale draft), read from its header."""

    width: int
    height: int
    mode: str
    scratch: int = 0  # what the decoder holds besides the pixels: coefficients, canvases, metadata, a file copy


def decode_memory(shape: DecodeShape, max_edge: int) -> int:
    """Peak bytes `normalise_image` needs for an image of `shape`: the largest of its steps.

    1. decode, then box-reduce (or convert strip by strip): scratch + decoded + reduced + strips;
    2. resample to the final size, the decoded pixels released unless they are the reduced image: reduced +
       the horizontal pass + the result;
    3. rotate, convert to RGB(A) and encode the small result: three images' worth of it.
    """
    width, height, mode = shape.width, shape.height, shape.mode
    decoded = width * height * pixel_bytes(mode)
    target = fit(width, height, max_edge)
    factor_x, factor_y = reduce_factors((width, height), target)
    reduced_width, reduced_height = -(-width // factor_x), -(-height // factor_y)
    if mode in NATIVE_MODES:
        work = pixel_bytes(mode)
        reduced = reduced_width * reduced_height * work
        in_place = (factor_x, factor_y) == (1, 1)  # the decoded image is the one resampled
        strips = 0
    else:
        work = WORK_PIXEL_BYTES
        reduced = reduced_width * reduced_height * work
        in_place = False
        strips = width * strip_rows(width, factor_y) * (pixel_bytes(mode) + 2 * WORK_PIXEL_BYTES)
    load = shape.scratch + decoded + (0 if in_place else reduced) + strips
    result = target[0] * target[1] * work
    resample = reduced + target[0] * reduced_height * work + result
    encode = 3 * target[0] * target[1] * WORK_PIXEL_BYTES
    return CODEC_OVERHEAD_BYTES + max(load, resample, encode)


def too_large(needed: int, limit: int) -> TooLarge:
    return TooLarge(f"Decoding this image would take about {needed / MiB:,.0f} MiB of memory, more than this server "
                    f"allows ({limit / MiB:,.0f} MiB); send an image with fewer pixels.",
                    code="image_too_large", param="file")


def _busy() -> Unavailable:
    return Unavailable("Too many images are being processed right now; try again in a moment.",
                       code="images_busy", retry_after="2")


class DecodeSlots:
    """Decodes run in worker threads, each holding the memory its image needs out of a shared total, at most
    `concurrency` at once. The others wait in turn (first come, first served, so small images do not starve a big
    one): at most `queue` of them, each for at most `wait_seconds`, then 503. Building it makes the process give
    big allocations back to the kernel when they are freed (`return_big_allocations`)."""

    def __init__(self, *, memory_bytes: int, concurrency: int, queue: int, wait_seconds: float,
                 refused: Counter) -> None:
        self.memory_bytes = memory_bytes
        self._concurrency = concurrency
        self._queue = queue
        self._wait_seconds = wait_seconds
        self._refused = refused
        self._free = memory_bytes
        self._running = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()
        return_big_allocations()

    async def run(self, memory: int, decode: Callable[[], T]) -> T:
        """`decode()` in a worker thread once `memory` bytes are free; TooLarge if they never can be."""
        if memory > self.memory_bytes:
            raise too_large(memory, self.memory_bytes)
        await self._acquire(memory)
        worker = asyncio.ensure_future(asyncio.to_thread(decode))

        def done(task: asyncio.Future[T]) -> None:
            # A thread cannot be stopped: the memory is released when it ends, not when a caller stops waiting.
            self._release(memory)
            if not task.cancelled():
                task.exception()  # retrieved, so a caller who went away leaves no "never retrieved" warning

        worker.add_done_callback(done)
        return await asyncio.shield(worker)

    def _fits(self, memory: int) -> bool:
        return self._running < self._concurrency and memory <= self._free

    def _take(self, memory: int) -> None:
        self._free -= memory
        self._running += 1

    def _release(self, memory: int) -> None:
        self._free += memory
        self._running -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            memory, granted = self._waiting[0]
            if granted.done():  # its waiter was cancelled and has not removed itself yet
                self._waiting.popleft()
                continue
            if not self._fits(memory):
                return
            self._waiting.popleft()
            self._take(memory)
            granted.set_result(None)

    async def _acquire(self, memory: int) -> None:
        if not self._waiting and self._fits(memory):
            self._take(memory)
            return
        if len(self._waiting) >= self._queue:
            self._refused.labels("queue_full").inc()
            raise _busy()
        entry = (memory, asyncio.get_running_loop().create_future())
        self._waiting.append(entry)
        granted = entry[1]
        try:
            async with asyncio.timeout(self._wait_seconds):
                await granted
        except BaseException as exc:
            if granted.done() and not granted.cancelled():  # granted just as the wait ended
                if isinstance(exc, TimeoutError):
                    return
                self._release(memory)
                raise
            if entry in self._waiting:
                self._waiting.remove(entry)
                self._wake()  # the next in line may fit now
            if isinstance(exc, TimeoutError):
                self._refused.labels("timed_out").inc()
                raise _busy() from None
            raise


def return_big_allocations() -> None:
    """Allocations of MMAP_THRESHOLD_BYTES or more are mmapped, so freeing one returns it to the kernel at once
    (glibc's mallopt; a no-op where libc has none)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
