"""Fixtures of the operator tests: the fake Kubernetes API server, and kopf's memo with a Reconciler pointed at
it and at the fake ElevenLabs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import kopf
import pytest

from tests.fakes.elevenlabs_api import FakeElevenLabs
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.operator.support import new_memo, start_cluster


@pytest.fixture
async def cluster() -> AsyncIterator[FakeKubernetes]:
    fake = await start_cluster()
    yield fake
    await fake.stop()


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch, cluster: FakeKubernetes, elevenlabs: FakeElevenLabs) -> kopf.Memo:
    monkeypatch.delenv("GLIMPSE_PROXY_IMAGE", raising=False)  # the default proxy image, whatever the shell has
    monkeypatch.delenv("GLIMPSE_PROXY_NETWORK_POLICY", raising=False)  # the default NetworkPolicy settings too
    return new_memo(cluster, elevenlabs)
