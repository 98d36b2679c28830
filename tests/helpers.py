"""Requests shaped like the page's and ElevenLabs' own (Chat Completions and Responses mode) and the proxy's SSE answers
parsed, for the integration tests."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.images import jpeg

SYSTEM_PROMPT = {"role": "system", "content": "You are a museum guide. Answer briefly; you are speaking aloud."}
END_CALL = {"type": "function", "name": "end_call", "description": "End the call when the user says goodbye.",
            "parameters": {"type": "object", "properties": {"reason": {"type": "string"}}, "required": []},
            "strict": False}


async def new_session(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/session") as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def upload(http: aiohttp.ClientSession, base: str, session: dict[str, Any] | None, data: bytes | None = None,
                 *, ready: bool | None = None, token: str | None = None, session_id: str | None = None,
                 filename: str = "photo.jpg", content_type: str = "image/jpeg",
                 path: str = "/v1/images") -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    sid = session_id if session_id is not None else (session or {}).get("session_id")
    if sid is not None:  # before the file, as the page sends it: the proxy checks it before reading the file
        form.add_field("session_id", sid)
    form.add_field("file", jpeg() if data is None else data, filename=filename, content_type=content_type)
    if ready is not None:
        form.add_field("ready", "true" if ready else "false")
    headers = {}
    upload_token = token if token is not None else (session or {}).get("upload_token")
    if upload_token:
        headers["X-Upload-Token"] = upload_token
    response = await http.post(base + path, data=form, headers=headers)
    await response.read()
    return response


def elevenlabs_body(session: dict[str, Any] | str | None, messages: list[dict[str, Any]], *, stream: bool = True,
                    **extra: Any) -> dict[str, Any]:
    """What ElevenLabs sends a custom LLM: OpenAI fields plus user_id and elevenlabs_extra_body. `session`: the
    page's session from /v1/session (its id and key, as the page passes them), or a bare session id (no key)."""
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": messages, "stream": stream, "temperature": 0.5,
                            "max_tokens": 300, "user_id": "el-user-42"}
    if isinstance(session, dict):
        body["elevenlabs_extra_body"] = {"session_id": session["session_id"], "session_key": session["session_key"]}
    elif session is not None:
        body["elevenlabs_extra_body"] = {"session_id": session}
    body.update(extra)
    return body


def conversation(*turns: str) -> list[dict[str, Any]]:
    """System prompt, then alternating user/assistant turns (ending with the user's)."""
    messages = [SYSTEM_PROMPT]
    for index, text in enumerate(turns):
        messages.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    return messages


def responses_body(session: dict[str, Any] | None, *questions: str, stream: bool = True,
                   **extra: Any) -> dict[str, Any]:
    """Shaped as ElevenLabs calls a custom LLM in Responses mode: input items, its tools, its extra fields."""
    items: list[dict[str, Any]] = [SYSTEM_PROMPT]
    for index, text in enumerate(questions):
        items.append({"role": "user" if index % 2 == 0 else "assistant", "content": text})
    body: dict[str, Any] = {"model": "gpt-4o-mini", "input": items, "stream": stream, "temperature": 0.5,
                            "tools": [END_CALL], "user_id": "el-user-42"}
    if session is not None:
        body["elevenlabs_extra_body"] = {"session_id": session["session_id"], "session_key": session["session_key"]}
    return body | extra


def parse_sse(raw: bytes) -> list[str]:
    """The `data:` payloads of a strict OpenAI SSE body; asserts the framing on the way."""
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
    events = raw.decode().split("\n\n")
    assert events[-1] == ""
    payloads = []
    for event in events[:-1]:
        assert event.startswith("data: "), event
        assert "\n" not in event, event
        payloads.append(event[len("data: "):])
    return payloads


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """`event:` + `data:` pairs of a Responses stream; asserts the framing on the way."""
    assert raw.endswith(b"\n\n") and b"[DONE]" not in raw, raw[-200:]
    events = []
    for block in raw.decode().split("\n\n")[:-1]:
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        data = json.loads(data_line[len("data: "):])
        assert data["type"] == name_line[len("event: "):]
        events.append((data["type"], data))
    return events


def contents(payloads: list[str]) -> str:
    text = ""
    for payload in payloads:
        if payload == "[DONE]":
            continue
        for choice in json.loads(payload).get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
    return text


def image_parts(messages: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    found = []
    for index, message in enumerate(messages):
        if isinstance(message.get("content"), list):
            found += [(index, part) for part in message["content"] if part.get("type") == "image_url"]
    return found
