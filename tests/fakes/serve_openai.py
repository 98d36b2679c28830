"""Run the fake OpenAI upstream as its own process: python -m tests.fakes.serve_openai PORT [CHUNK_DELAY]."""

from __future__ import annotations

import asyncio
import sys

from tests.fakes.loopback import serve_app
from tests.fakes.openai_upstream import Behaviour, FakeOpenAI


async def main(port: int, chunk_delay: float) -> None:
    fake = FakeOpenAI()
    fake.default = Behaviour(chunk_delay=chunk_delay)
    await serve_app(fake.app, port)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
