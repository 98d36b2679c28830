"""Bounded soak on loopback (make soak; not part of CI): N streams over D seconds with faults mixed in,
against a real `glimpse serve` process and the fake upstream process. Reports errors, TTFT p50/p99 and the
proxy's RSS before and after, and rewrites the figures in docs/reliability.md.

    python -m tests.proxy.reliability.soak [--streams 1000] [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from tests.helpers import conversation, elevenlabs_body, new_session, upload
from tests.paths import ROOT
from tests.processes import start_fake_upstream, start_glimpse

REPORT = ROOT / "docs" / "reliability.md"
MARK = "<!-- soak figures: written by tests/proxy/reliability/soak.py -->"
# model -> what the caller must see: the fault mix of the soak
MIX = [("gpt-4o-mini", 0.85, 200), ("fault-500", 0.04, 502), ("fault-429", 0.03, 429), ("fault-drop", 0.05, 200),
       ("fault-slow-first-byte", 0.03, 200)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def one_stream(http: aiohttp.ClientSession, base: str, session: dict, model: str, expected: int,
                     results: Counter, ttfts: list[float]) -> None:
    started = time.perf_counter()
    body = elevenlabs_body(session, conversation("Describe what you see."), model=model)
    try:
        async with http.post(base + "/v1/chat/completions", json=body) as response:
            if response.status != expected:
                results[f"unexpected {response.status} for {model}"] += 1
                await response.read()
                return
            if response.status != 200:
                results[f"expected {response.status}"] += 1
                await response.read()
                return
            first = True
            raw = b""
            async for chunk in response.content.iter_any():
                if first:
                    ttfts.append(time.perf_counter() - started)
                    first = False
                raw += chunk
            if not raw.endswith(b"data: [DONE]\n\n"):
                results["stream without [DONE]"] += 1
            elif b'"stream_interrupted"' in raw:
                results["expected in-band error (drop)"] += 1
            else:
                results["ok"] += 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        results[f"client error {type(exc).__name__}"] += 1


async def soak(streams: int, seconds: float) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="glimpse-soak-"))
    fake, fake_url = await asyncio.to_thread(start_fake_upstream, 0.02)
    glimpse, base = await asyncio.to_thread(start_glimpse, workdir, upstream_base_url=fake_url,
                                            upstream_api_key="sk-soak", upstream_max_retries="2",
                                            log_level="WARNING")
    results: Counter = Counter()
    ttfts: list[float] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            sessions = [await new_session(http, base) for _ in range(20)]
            for session in sessions[:10]:
                await upload(http, base, session)
            await asyncio.sleep(1)
            rss_before = rss_kib(glimpse.popen.pid)
            interval = seconds / streams
            tasks = []
            rng = random.Random(42)
            started = time.monotonic()
            for index in range(streams):
                model = rng.choices([m for m, _, _ in MIX], [w for _, w, _ in MIX])[0]
                expected = next(status for m, _, status in MIX if m == model)
                tasks.append(asyncio.create_task(one_stream(http, base, sessions[index % len(sessions)], model,
                                                            expected, results, ttfts)))
                await asyncio.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
            await asyncio.sleep(2)
            rss_after = rss_kib(glimpse.popen.pid)
    finally:
        await asyncio.to_thread(glimpse.stop)
        await asyncio.to_thread(fake.stop)
    ttfts.sort()
    return {"streams": streams, "seconds": round(elapsed, 1), "results": dict(results),
            "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1),
            "ttft_p99_ms": round(ttfts[int(len(ttfts) * 0.99) - 1] * 1000, 1),
            "rss_before_mib": round(rss_before / 1024, 1), "rss_after_mib": round(rss_after / 1024, 1)}


def write_report(figures: dict) -> None:
    unexpected = sum(v for k, v in figures["results"].items() if k.startswith(("unexpected", "stream without",
                                                                                  "client error")))
    lines = [MARK, "", f"Last run: {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
             f"{figures['streams']} streams in {figures['seconds']} s on loopback.", "",
             "| figure | value |", "|---|---|",
             f"| unexpected outcomes | {unexpected} |"]
    lines += [f"| outcome: {k} | {v} |" for k, v in sorted(figures["results"].items())]
    lines += [f"| TTFT p50 / p99 (ms, includes the 1.5 s slow-first-byte faults) | {figures['ttft_p50_ms']} / "
              f"{figures['ttft_p99_ms']} |",
              f"| proxy RSS before / after (MiB) | {figures['rss_before_mib']} / {figures['rss_after_mib']} |", ""]
    text = REPORT.read_text()
    REPORT.write_text(text.split(MARK)[0] + "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=300)
    args = parser.parse_args()
    figures = asyncio.run(soak(args.streams, args.seconds))
    print(figures)
    write_report(figures)


if __name__ == "__main__":
    main()
