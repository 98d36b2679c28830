"""Run the fake OpenAI upstream as its own process: python -m tests.fakes.serve_openai PORT [CHUNK_DELAY]."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from tests.fakes.openai_upstream import Behaviour, FakeOpenAI


async def main(port: int, chunk_delay: float) -> None:
    fake = FakeOpenAI()
    fake.default = Behaviour(chunk_delay=chunk_delay)
    runner = web.AppRunner(fake.app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
