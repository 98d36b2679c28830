"""The proxy's memory: what its image decodes and its turns' pictures may hold, and the container memory limit that
follows.

Plain numbers in, so the operator sizes a proxy pod from a VoiceAgent's spec without building the proxy's
`Settings`; the proxy's settings take their decode defaults from here (`Settings.decode_budget`). The chart computes
the same sum in its template (charts/glimpse/templates/proxy.yaml; tests/delivery/test_proxy_parity.py compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
PROCESS_BASELINE_BYTES = 96 * MiB  # the proxy's RSS with nothing to do (measured: 82 MiB)
MEMORY_HEADROOM_BYTES = 64 * MiB  # streams, buffers, the allocator's slack

# The defaults of the four settings below (GLIMPSE_IMAGE_DECODE_MEMORY_BYTES, _CONCURRENCY, _QUEUE, IMAGE_MAX_BYTES).
DECODE_MEMORY_BYTES = 256 * MiB
DECODE_CONCURRENCY = 2
DECODE_QUEUE = 6
IMAGE_MAX_BYTES = 10 * MiB


@dataclass(frozen=True)
class DecodeBudget:
    """The settings image decodes' memory follows: `memory_bytes` reserved for all running decodes together
    (GLIMPSE_IMAGE_DECODE_MEMORY_BYTES), at most `concurrency` decodes at once and `queue` waiting
    (GLIMPSE_IMAGE_DECODE_CONCURRENCY, _QUEUE), each holding its upload of up to `max_upload_bytes`
    (GLIMPSE_IMAGE_MAX_BYTES)."""

    memory_bytes: int = DECODE_MEMORY_BYTES
    concurrency: int = DECODE_CONCURRENCY
    queue: int = DECODE_QUEUE
    max_upload_bytes: int = IMAGE_MAX_BYTES

    def __post_init__(self) -> None:
        for name, least in (("memory_bytes", 1), ("concurrency", 1), ("queue", 0), ("max_upload_bytes", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")


def decode_memory_bytes(budget: DecodeBudget) -> int:
    """What image decodes may hold in total: the reserved decode memory, plus the uploaded files of the decodes
    running and waiting (each up to `max_upload_bytes`)."""
    return budget.memory_bytes + (budget.concurrency + budget.queue) * budget.max_upload_bytes


# --- Turn memory (issue 30): pictures built into upstream requests in flight, and the data: URL cache ---------------
# The defaults of GLIMPSE_TURN_PAYLOAD_MEMORY_BYTES and GLIMPSE_IMAGE_DATA_URL_CACHE_BYTES.
TURN_PAYLOAD_MEMORY_BYTES = 128 * MiB  # 3 turns of 8 pictures of 1.3 MB at once; a bigger turn runs alone
DATA_URL_CACHE_BYTES = 64 * MiB


@dataclass(frozen=True)
class TurnMemoryBudget:
    """The settings turns' picture memory follows: `payload_bytes` reserved by the requests being sent upstream with
    pictures inline (GLIMPSE_TURN_PAYLOAD_MEMORY_BYTES, conversation/payload_memory.py) and the data: URLs cached for
    the next turns (GLIMPSE_IMAGE_DATA_URL_CACHE_BYTES)."""

    payload_bytes: int = TURN_PAYLOAD_MEMORY_BYTES
    data_url_cache_bytes: int = DATA_URL_CACHE_BYTES

    def __post_init__(self) -> None:
        for name, least in (("payload_bytes", 1), ("data_url_cache_bytes", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")


def turn_memory_bytes(turns: TurnMemoryBudget) -> int:
    """What turns' pictures may hold in total: the requests in flight and the data: URL cache."""
    return turns.payload_bytes + turns.data_url_cache_bytes
# --- end of turn memory ----------------------------------------------------------------------------------------------


# --- Upload bodies (issue 30): what upload bodies being read may hold (GLIMPSE_UPLOAD_BODY_BUDGET_BYTES) ---
UPLOAD_FORM_OVERHEAD_BYTES = 256 * 1024  # an upload's form fields and part headers besides its file


def upload_body_bytes(max_upload_bytes: int) -> int:
    """The most one upload's request body may hold: its file and the form around it."""
    return max_upload_bytes + UPLOAD_FORM_OVERHEAD_BYTES


def upload_body_budget_bytes(budget: DecodeBudget) -> int:
    """GLIMPSE_UPLOAD_BODY_BUDGET_BYTES's default: as many whole upload bodies as the decodes may take at once
    (running and waiting), so that a burst the decodes accept is not refused while it is read."""
    return (budget.concurrency + budget.queue) * upload_body_bytes(budget.max_upload_bytes)
# --- end upload bodies ---


def memory_limit_mib(budget: DecodeBudget, upload_body_budget: int | None = None, *,
                     turns: TurnMemoryBudget = TurnMemoryBudget()) -> int:
    """The container memory limit a proxy with this budget needs, in MiB rounded up: its baseline, the decodes'
    memory, the upload bodies being read (`upload_body_budget`; default `upload_body_budget_bytes(budget)`), the
    turns' picture memory and headroom. The operator and the chart set it."""
    bodies = upload_body_budget_bytes(budget) if upload_body_budget is None else upload_body_budget
    return -(-(PROCESS_BASELINE_BYTES + decode_memory_bytes(budget) + bodies + turn_memory_bytes(turns)
               + MEMORY_HEADROOM_BYTES) // MiB)


CGROUP_MEMORY_MAX = Path("/sys/fs/cgroup/memory.max")


def memory_limit_bytes(budget: DecodeBudget, cgroup_memory_max: Path = CGROUP_MEMORY_MAX,
                       upload_body_budget: int | None = None, *, turns: TurnMemoryBudget = TurnMemoryBudget()) -> int:
    """The memory this process may use: its cgroup (v2) limit when it has one, else what `memory_limit_mib` says the
    budget needs (outside a container, or with no limit set)."""
    try:
        text = cgroup_memory_max.read_text().strip()
    except OSError:
        text = ""
    return int(text) if text.isdigit() else memory_limit_mib(budget, upload_body_budget, turns=turns) * MiB
