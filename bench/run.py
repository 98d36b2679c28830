"""Glimpse benchmark: time-to-first-token overhead against a direct connection, LiteLLM and nginx, in one run.

Targets, interleaved at each concurrency level so they share the machine's state:
  direct  - the fake upstream itself (the physical limit)
  glimpse - `glimpse serve` in front of it
  floor   - the least an aiohttp relay can cost (bench/floor.py: bytes in, bytes out, nothing checked)
  transport - the least a Python relay on asyncio's transports can cost (bench/floor_transport.py: no aiohttp)
  litellm - LiteLLM proxy in front of it (a separate venv, bench/.venv-litellm; skipped when absent)
  nginx   - nginx with proxy_buffering off (the floor any proxy costs; skipped when absent)
Writes bench/results/latest.json and the table in bench/README.md.

    python bench/run.py [--levels 1,50,200,500] [--requests 300] [--connections level|stream] [--profile 1,200]

Every level starts with new client connections: its C callers arrive as a burst of new callers does when traffic
shifts to a new replica, and each keeps its connection for its next streams (`--connections level`, the default);
with `--connections stream` every stream opens its own connection, so the targets' accept path is part of each.
`--profile` samples Glimpse with py-spy at the given levels and keeps the flame graph (collapsed stacks, text) and
its heaviest frames in bench/profiles/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from tests.processes import free_port, wait_for_port  # noqa: E402  (the harness runs as a script)

RESULTS = BENCH / "results" / "latest.json"
PROFILES = BENCH / "profiles"
README = BENCH / "README.md"
MARK = "<!-- results: written by bench/run.py -->"
CHUNKS, CHUNK_DELAY_MS, FIRST_BYTE_MS = 20, 20, 20
STREAM_SECONDS = (FIRST_BYTE_MS + CHUNKS * CHUNK_DELAY_MS) / 1000
CALLER_KEY = "sk-bench-0123456789abcdef0123456789abcdef"  # every proxy checks it, as in production
MESSAGES = [{"role": "system", "content": "You are a museum guide. Answer briefly."},
            {"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Hi! Show me something."},
            {"role": "user", "content": "What is in this picture?"}]


def process_tree(pid: int) -> list[int]:
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                queue += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class Target:
    name: str
    base_url: str
    pid: int | None  # the process whose CPU and memory are charged to this target
    body_extra: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None


def spawn(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, cwd=cwd, stdout=subprocess.DEVNULL,  # noqa: S603
                            stderr=subprocess.DEVNULL, start_new_session=True)


def ensure_litellm() -> Path | None:
    """LiteLLM lives in its own venv (its pins must not touch Glimpse's); made on first use."""
    venv = BENCH / ".venv-litellm"
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        print("installing litellm[proxy] into bench/.venv-litellm (once)...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=True)  # noqa: S603
        except subprocess.CalledProcessError as exc:
            print(f"LiteLLM could not be installed ({exc}); it is skipped", flush=True)
            return None
    return binary


def start_targets(upstream_url: str, upstream_pid: int, workdir: Path, want: set[str]) -> list[Target]:
    # `direct`'s CPU and memory are the fake upstream's own: what serving a stream costs without a proxy
    targets = [Target("direct", upstream_url, upstream_pid)]
    if "glimpse" in want:
        port = free_port()
        glimpse_bin = Path(sys.executable).parent / "glimpse"
        process = spawn([str(glimpse_bin), "serve"], cwd=workdir, env={
            "GLIMPSE_PORT": str(port), "GLIMPSE_UPSTREAM_BASE_URL": upstream_url, "GLIMPSE_UPSTREAM_API_KEY": "sk-b",
            "GLIMPSE_LOG_LEVEL": "WARNING", "GLIMPSE_SIGNING_SECRET": "bench-signing-secret-0123456789abcdef",
            "GLIMPSE_CUSTOM_LLM_KEY": CALLER_KEY, "GLIMPSE_IMAGE_MAX_BYTES": str(64 * 1024 * 1024),
            # every caller here is 127.0.0.1, standing for ElevenLabs' few addresses and many people, and every turn
            # is in one page session: no rate limits
            "GLIMPSE_CHAT_RATE_PER_MINUTE": "0", "GLIMPSE_SESSION_RATE_PER_MINUTE": "0",
            "GLIMPSE_UPLOAD_RATE_PER_MINUTE": "0", "GLIMPSE_CONVERSATION_RATE_PER_MINUTE": "0"})
        wait_for_port(port)
        # a real page session, so every turn looks its conversation up as ElevenLabs' turns do
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/session?voice=false") as answer:
            session = json.loads(answer.read())
        targets.append(Target("glimpse", f"http://127.0.0.1:{port}/v1", process.pid,
                              {"user_id": "bench-user", "elevenlabs_extra_body": {
                                  "session_id": session["session_id"], "session_key": session["session_key"]}},
                              process))
    for name, script in (("floor", "floor.py"), ("transport", "floor_transport.py")):
        if name in want:
            port = free_port()
            process = spawn([sys.executable, str(BENCH / script), str(port), upstream_url])
            wait_for_port(port)
            targets.append(Target(name, f"http://127.0.0.1:{port}/v1", process.pid, {}, process))
    litellm = ensure_litellm() if "litellm" in want else None
    if litellm is not None:
        port = free_port()
        config = workdir / "litellm.yaml"
        config.write_text(json.dumps({"model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
            "model": "openai/gpt-4o-mini", "api_base": upstream_url, "api_key": "sk-b"}}],
            "litellm_settings": {"drop_params": True, "telemetry": False}}))
        process = spawn([str(litellm), "--config", str(config), "--port", str(port), "--host", "127.0.0.1",
                         "--num_workers", "1"], env={"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False",
                                                          "LITELLM_MASTER_KEY": CALLER_KEY})
        wait_for_port(port, 180)
        targets.append(Target("litellm", f"http://127.0.0.1:{port}/v1", process.pid, {}, process))
    nginx = shutil.which("nginx")
    if "nginx" in want and nginx:
        port = free_port()
        upstream_port = upstream_url.split(":")[2].split("/")[0]
        (workdir / "logs").mkdir(exist_ok=True)
        conf = workdir / "nginx.conf"
        conf.write_text(f"""worker_processes 1; daemon off; error_log stderr error; pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{ access_log off; upstream fake {{ server 127.0.0.1:{upstream_port}; keepalive 512; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://fake; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_buffering off; proxy_request_buffering off; }} }} }}""")
        process = spawn([nginx, "-c", str(conf), "-p", str(workdir)])
        wait_for_port(port)
        targets.append(Target("nginx", f"http://127.0.0.1:{port}/v1", process.pid, {}, process))
    return targets


async def one_stream(http: aiohttp.ClientSession, target: Target) -> tuple[float, float, int] | None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "temperature": 0.5, **target.body_extra}
    started = time.perf_counter()
    first, chunks = None, 0
    try:
        async with http.post(target.base_url + "/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {CALLER_KEY}"}) as response:
            if response.status != 200:
                await response.read()
                return None
            async for line in response.content:
                if line.startswith(b"data: {"):
                    if first is None and b'"content":"word' in line.replace(b": ", b":"):
                        first = time.perf_counter() - started
                    chunks += 1
    except (aiohttp.ClientError, TimeoutError):
        return None
    if first is None:
        return None
    return first, time.perf_counter() - started, chunks


async def run_level(target: Target, concurrency: int, requests: int, *, fresh: bool = False,
                    profile: Path | None = None) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=0, force_close=fresh)
    results: list[tuple[float, float, int]] = []
    failures = 0
    remaining = requests
    peak_rss = 0
    idle_rss = rss_kib(target.pid) if target.pid else 0
    cpu_before = cpu_seconds(target.pid) if target.pid else 0.0

    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as http:
        async def worker(index: int) -> None:
            nonlocal remaining, failures
            # Spread the first requests over one stream's length: callers do not all speak at the same
            # instant, and synchronised bursts would measure queueing in the load generator's own rhythm.
            await asyncio.sleep(STREAM_SECONDS * index / concurrency)
            while remaining > 0:
                remaining -= 1
                result = await one_stream(http, target)
                if result is None:
                    failures += 1
                else:
                    results.append(result)

        async def sample() -> None:
            nonlocal peak_rss
            while True:
                if target.pid:
                    peak_rss = max(peak_rss, rss_kib(target.pid))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        profiler = start_profiler(target.pid, profile) if profile and target.pid else None
        started = time.perf_counter()
        await asyncio.gather(*[worker(i) for i in range(concurrency)])
        elapsed = time.perf_counter() - started
        sampler.cancel()
        if profiler:
            stop_profiler(profiler, profile)  # type: ignore[arg-type]
    ttfts = sorted(r[0] * 1000 for r in results)
    chunks = sum(r[2] for r in results)
    cpu = (cpu_seconds(target.pid) - cpu_before) if target.pid else None

    def pct(q: float) -> float:
        return round(ttfts[min(len(ttfts) - 1, int(len(ttfts) * q))], 2) if ttfts else float("nan")

    return {"target": target.name, "concurrency": concurrency, "completed": len(results), "failed": failures,
            "ttft_p50_ms": pct(0.5), "ttft_p95_ms": pct(0.95), "ttft_p99_ms": pct(0.99),
            "total_p50_ms": round(statistics.median(r[1] for r in results) * 1000, 1) if results else None,
            "streams_per_s": round(len(results) / elapsed, 1), "chunks_per_s": round(chunks / elapsed),
            "cpu_s_per_1000_chunks": round(cpu / chunks * 1000, 4) if cpu is not None and chunks else None,
            "cpu_ms_per_stream": round(cpu / len(results) * 1000, 3) if cpu is not None and results else None,
            "idle_rss_mib": round(idle_rss / 1024, 1) if target.pid else None,
            "peak_rss_mib": round(peak_rss / 1024, 1) if target.pid else None,
            "rss_per_stream_kib": round((peak_rss - idle_rss) / concurrency, 1) if target.pid else None}


async def upload_bench(glimpse: Target, samples: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    import io

    from PIL import Image

    jpeg = phone_photo_jpeg(4032, 3024)  # 12 MP as a phone takes it: smooth areas, texture, sensor grain
    png_image = Image.effect_noise((5000, 4000), 64).convert("RGB")  # 20 megapixels that do not compress
    buffer = io.BytesIO()
    png_image.save(buffer, format="PNG", compress_level=1)
    png = buffer.getvalue()
    base = glimpse.base_url.removesuffix("/v1")
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        for label, data, name in (("jpeg_12mp", jpeg, "photo.jpg"), ("png_20mp", png, "big.png")):
            timings = []
            for _ in range(samples):
                async with http.get(base + "/v1/session") as response:
                    session = await response.json()
                form = aiohttp.FormData()
                form.add_field("session_id", session["session_id"])  # before the file, which is read after it
                form.add_field("file", data, filename=name)
                started = time.perf_counter()
                async with http.post(base + "/v1/images", data=form,
                                     headers={"X-Upload-Token": session["upload_token"]}) as response:
                    await response.read()
                    ok = response.status == 201
                if ok:
                    timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            out[label] = {"bytes": len(data), "samples": len(timings),
                          "p50_ms": round(statistics.median(timings), 1) if timings else None,
                          "p95_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.95))], 1)
                          if timings else None}
    return out


def phone_photo_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG at quality 92 (about 2.3 MB at 12 MP): colour gradients, a blurred texture and fine grain."""
    import io

    from PIL import Image

    gradients = Image.merge("RGB", [Image.linear_gradient("L").resize((width, height)),
                                    Image.radial_gradient("L").resize((width, height)),
                                    Image.linear_gradient("L").rotate(90).resize((width, height))])
    texture = Image.effect_noise((width // 8, height // 8), 60).resize((width, height), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((width, height), 12)
    photo = Image.blend(Image.blend(gradients, texture.convert("RGB"), 0.4), grain.convert("RGB"), 0.15)
    out = io.BytesIO()
    photo.save(out, format="JPEG", quality=92)
    return out.getvalue()


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    direct = {r["concurrency"]: r for r in rows if r["target"] == "direct"}
    for row in rows:
        base = direct.get(row["concurrency"])
        if base and row["target"] != "direct":
            for q in ("p50", "p99"):
                row[f"overhead_{q}_ms"] = round(row[f"ttft_{q}_ms"] - base[f"ttft_{q}_ms"], 2)
                row[f"ratio_{q}"] = round(row[f"ttft_{q}_ms"] / base[f"ttft_{q}_ms"], 3)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| C | target | TTFT p50 / p95 / p99 ms | overhead p50 / p99 ms (ratio p50) | CPU ms / stream "
            "| streams/s | chunks/s | idle / peak RSS MiB | RSS / stream KiB | failed |")
    lines = [head, "|" + "---|" * 10]

    def shown(value: object) -> str:
        return "—" if value is None else str(value)

    for r in rows:
        overhead = (f"{r['overhead_p50_ms']} / {r['overhead_p99_ms']} (x{r['ratio_p50']})"
                    if "overhead_p50_ms" in r else "—")
        lines.append(f"| {r['concurrency']} | {r['target']} | {r['ttft_p50_ms']} / {r['ttft_p95_ms']} / "
                     f"{r['ttft_p99_ms']} | {overhead} | {shown(r.get('cpu_ms_per_stream'))} | "
                     f"{r['streams_per_s']} | {r['chunks_per_s']} | "
                     f"{shown(r['idle_rss_mib'])} / {shown(r['peak_rss_mib'])} | "
                     f"{shown(r['rss_per_stream_kib'])} | {r['failed']} |")
    return "\n".join(lines)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the target (and its worker processes) until stopped; None when py-spy is absent."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        print("py-spy is not installed (pip install py-spy); no profile", flush=True)
        return None
    out.parent.mkdir(exist_ok=True)
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",  # noqa: S603
                             "--rate", "1000", "--nonblocking", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(process: subprocess.Popen[bytes], out: Path) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(30)
    if out.exists():
        out.with_suffix(".top.txt").write_text(heaviest_frames(out.read_text()))


def heaviest_frames(collapsed: str, limit: int = 40) -> str:
    """The frames with the most samples, inclusive and self, from py-spy's collapsed stacks."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count

    def listing(counts: dict[str, int]) -> str:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return "\n".join(f"{100 * n / total:6.2f}%  {frame}" for frame, n in ranked)

    return (f"{total} samples\n\n## inclusive (the frame or anything it called)\n{listing(inclusive)}\n\n"
            f"## self (the frame itself)\n{listing(own)}\n")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="glimpse-bench-"))
    upstream_port = free_port()
    upstream = spawn([sys.executable, str(BENCH / "upstream.py"), str(upstream_port), str(CHUNKS),
                      str(CHUNK_DELAY_MS), str(FIRST_BYTE_MS)])
    wait_for_port(upstream_port)
    targets = start_targets(f"http://127.0.0.1:{upstream_port}/v1", upstream.pid, workdir,
                            set(args.targets.split(",")))
    fresh = args.connections == "stream"
    profiled = {int(x) for x in args.profile.split(",") if x}
    rows: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(1)
        for target in targets:  # warm-up: connections, imports, JIT-less caches
            await run_level(target, 4, 20)
        for level in [int(x) for x in args.levels.split(",")]:
            requests = max(level * 2, min(args.requests, level * 60))  # C=1: 60 sequential streams
            for target in targets:
                profile = PROFILES / f"{target.name}-c{level}.collapsed" \
                    if level in profiled and target.name == "glimpse" else None
                row = await run_level(target, level, requests, fresh=fresh, profile=profile)
                rows.append(row)
                print(json.dumps(row), flush=True)
        glimpse = next((t for t in targets if t.name == "glimpse"), None)
        uploads = await upload_bench(glimpse, args.upload_samples) if glimpse else {}
    finally:
        for target in targets:
            if target.process:
                os.killpg(target.process.pid, signal.SIGTERM)
        upstream.terminate()
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}", "upstream": {"chunks": CHUNKS, "chunk_delay_ms": CHUNK_DELAY_MS,
                                                                "first_byte_delay_ms": FIRST_BYTE_MS},
            "connections": args.connections, "rows": summarise(rows), "uploads": uploads,
            "skipped": sorted(set(args.targets.split(",")) - {t.name for t in targets})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,50,200,500")
    parser.add_argument("--requests", type=int, default=300, help="streams per target and level (at least 2 C)")
    parser.add_argument("--targets", default="glimpse,floor,transport,litellm,nginx")
    parser.add_argument("--upload-samples", type=int, default=15)
    parser.add_argument("--connections", choices=("level", "stream"), default="level",
                        help="new connections at each level, kept by each caller (level) or one per stream")
    parser.add_argument("--profile", default="", help="levels at which to profile Glimpse with py-spy, e.g. 1,200")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help="the results file; any other than the default leaves bench/README.md alone")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    args.output.parent.mkdir(exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    text = table(results["rows"])
    uploads = "\n".join(f"| {k} | {v['bytes']:,} | {v['p50_ms']} | {v['p95_ms']} |"
                        for k, v in results["uploads"].items())
    report = (f"{MARK}\n\nRun {results['date']} on {results['machine']}; upstream: {CHUNKS} chunks, "
              f"{CHUNK_DELAY_MS} ms apart, first byte after {FIRST_BYTE_MS} ms; new connections "
              f"{'per stream' if results['connections'] == 'stream' else 'at each level'}. Skipped: "
              f"{', '.join(results['skipped']) or 'none'}.\n\n{text}\n\n| upload | bytes | to URL p50 ms | p95 ms |\n"
              f"|---|---|---|---|\n{uploads}\n")
    print(report)
    if README.exists() and args.output == RESULTS:
        README.write_text(README.read_text().split(MARK)[0] + report)


if __name__ == "__main__":
    main()
