"""A fake of Gemini's OpenAI-compatible endpoint on loopback (generativelanguage.googleapis.com/v1beta/openai/),
speaking its wire format and refusing what it refuses (`provider_rules`).

Routes: POST /v1beta/openai/chat/completions and GET /v1beta/openai/models; anything else (the Responses API
included) is Google's 404. Requests authenticate with `Authorization: Bearer <key>`: a wrong key is Google's 400
API_KEY_INVALID, none at all its 403. Errors are google.rpc.Status bodies wrapped in a JSON array, as this endpoint
writes them. Streams differ from OpenAI's as Gemini's do: no role-only first chunk (every delta carries the role),
the last text arrives with the finish_reason, usage rides on that last chunk (only when asked for), no
`system_fingerprint`/`logprobs`/null `finish_reason`, keys in alphabetical order, Gemini's response ids, and
`data: [DONE]` at the end. Behaviours are FakeOpenAI's (error statuses with Google's bodies, a slow first byte, a
drop mid-stream), plus `GeminiBehaviour.error_after`: the raw error array Gemini writes into a stream it gives up on.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.openai_upstream import Behaviour, FakeUpstream
from tests.fakes.provider_rules import GoogleRefusal, gemini_chat_refusal, invalid_argument
from tests.fakes.vendor_spec import known_fields, validator

DEFAULT_KEY = "AIzaSy-fake-gemini-key-for-tests-000000"
GEMINI_MODELS = ["gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-pro", "gemini-2.0-flash"]
JSON_UTF8 = "application/json; charset=UTF-8"


@dataclass
class GeminiBehaviour(Behaviour):
    # After this many chunks Gemini gives up and writes its error array into the stream as is, no `data:`, no [DONE]
    # (third-party clients' fixtures of the compat endpoint: "a plain multi-line 503 after valid SSE").
    error_after: int | None = None


def google_error_body(refusal: GoogleRefusal) -> bytes:
    # The compat endpoint wraps the google.rpc.Status in an array, pretty-printed: "[{\n  \"error\": {\n    \"code\": …
    # \n}\n]" (liliMozi/openhanako#394, ed-donner/agents#45, captured 503s in several clients' tests).
    return ("[" + json.dumps({"error": refusal.error()}, indent=2, ensure_ascii=False) + "\n]").encode()


def google_error(refusal: GoogleRefusal) -> web.Response:
    return web.Response(status=refusal.http_status, body=google_error_body(refusal), content_type="application/json",
                        charset="UTF-8")


def api_key_invalid() -> GoogleRefusal:
    # A wrong key: 400 INVALID_ARGUMENT with ErrorInfo API_KEY_INVALID and a LocalizedMessage (continuedev/continue
    # #10290 and others, verbatim), array-wrapped on this endpoint (a client's test: "the nested array response used
    # for invalid API keys").
    message = "API key not valid. Please pass a valid API key."
    return GoogleRefusal(400, message, "INVALID_ARGUMENT", (
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}))


def no_api_key() -> GoogleRefusal:
    # No key at all: 403 PERMISSION_DENIED (a client's test "measured against generativelanguage.googleapis.com").
    return GoogleRefusal(403, "Method doesn't allow unregistered callers (callers without established identity). "
                              "Please use API Key or other form of API consumer identity to call this API.",
                         "PERMISSION_DENIED")


def model_not_found(model: str) -> GoogleRefusal:
    # A model it does not serve: 404 NOT_FOUND (google-gemini/gemini-api-quickstart#20, verbatim).
    return GoogleRefusal(404, f"models/{model} is not found for API version v1beta, or is not supported for "
                              "generateContent. Call ListModels to see the list of available models and their "
                              "supported methods.", "NOT_FOUND")


def status_refusal(behaviour: Behaviour, model: str) -> GoogleRefusal:
    """Google's body for an error status a test asks for (400 is the wrong-key refusal, the 400 a failover meets)."""
    status = behaviour.status or 500
    if status == 429:
        # RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo (RooCodeInc/Roo-Code#3883, verbatim); the delay
        # rides in RetryInfo.retryDelay, not in a Retry-After header.
        details: tuple[dict[str, Any], ...] = (
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                "quotaDimensions": {"location": "global", "model": model}, "quotaValue": "250000"}]},
            {"@type": "type.googleapis.com/google.rpc.Help", "links": [
                {"description": "Learn more about Gemini API quotas",
                 "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]})
        if behaviour.retry_after is not None:
            retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{behaviour.retry_after}s"}
            details += (retry,)
        return GoogleRefusal(429, "You exceeded your current quota, please check your plan and billing details. For "
                                  "more information on this error, head to: https://ai.google.dev/gemini-api/docs/"
                                  "rate-limits.", "RESOURCE_EXHAUSTED", details)
    if status == 503:
        # UNAVAILABLE, as the compat endpoint words it (captured in several clients' tests, array-wrapped).
        return GoogleRefusal(503, "This model is currently experiencing high demand. Spikes in demand are usually "
                                  "temporary. Please try again later.", "UNAVAILABLE")
    if status == 400:
        return api_key_invalid()
    if status == 401:
        # Google's UNAUTHENTICATED wording (googleapis in general; not seen from this endpoint, which answers a wrong
        # key with the 400 above).
        return GoogleRefusal(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                                  "login cookie or other valid authentication credential. See https://developers."
                                  "google.com/identity/sign-in/web/devconsole-project.", "UNAUTHENTICATED")
    if status == 403:
        return no_api_key()
    if status == 404:
        return model_not_found(model)
    if status == 504:
        # DEADLINE_EXCEEDED as the native API words it (a client's comment lists it beside the 503).
        return GoogleRefusal(504, "The request timed out. Please try again.", "DEADLINE_EXCEEDED")
    # INTERNAL, verbatim from several clients' captured 500s (and the one for any other status asked for).
    return GoogleRefusal(status, "An internal error has occurred. Please retry or report in https://developers."
                                 "generativeai.google/guide/troubleshooting", "INTERNAL")


def not_found_page(path: str) -> web.Response:
    # A path the endpoint does not serve (POST …/openai/responses: "HTTP/1.1 404 Not Found", a client's httpx log):
    # Google's front end's own 404 page.
    html = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n  <meta name=viewport content=\"initial-scale=1, "
            "minimum-scale=1, width=device-width\">\n  <title>Error 404 (Not Found)!!1</title>\n  <p><b>404.</b> "
            f"<ins>That\u2019s an error.</ins>\n  <p>The requested URL <code>{path}</code> was not found on this "
            "server.  <ins>That\u2019s all we know.</ins>\n")
    return web.Response(status=404, text=html, content_type="text/html", charset="UTF-8")


def response_id() -> str:
    # Gemini's ids are its responseId, 23 url-safe characters ("1URyaLjuGKiqmtkPj86KuAI"), not "chatcmpl-…".
    return "".join(random.choices(string.ascii_letters + string.digits + "-_", k=23))


class FakeGemini(FakeUpstream):
    prefix = "/v1beta/openai/"

    def __init__(self, api_key: str | None = DEFAULT_KEY) -> None:
        super().__init__()
        self.api_key = api_key  # None: any key is taken
        self.models = list(GEMINI_MODELS)
        self.app.router.add_post("/v1beta/openai/chat/completions", self._chat)
        self.app.router.add_get("/v1beta/openai/models", self._models)
        self.app.router.add_route("*", "/{path:.*}", self._not_found)

    def _auth_refusal(self, request: web.Request) -> GoogleRefusal | None:
        authorization = request.headers.get("Authorization", "")
        key = authorization[len("Bearer "):].strip() if authorization.startswith("Bearer ") else ""
        if not key:
            return no_api_key()
        if self.api_key is not None and key != self.api_key:
            return api_key_invalid()
        return None

    async def _not_found(self, request: web.Request) -> web.Response:
        self._record(request, {})
        return not_found_page(request.path)

    async def _models(self, request: web.Request) -> web.Response:
        self._record(request, {})
        if refusal := self._auth_refusal(request):
            return google_error(refusal)
        # Model ids carry the "models/" prefix here (OpenCoworkAI/open-codesign#175: "models/gemini-3.1-pro-preview").
        return web.json_response({"object": "list", "data": [
            {"id": f"models/{m}", "object": "model", "owned_by": "google"} for m in self.models]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        self._record(request, body if isinstance(body, dict) else {})
        if refusal := self._auth_refusal(request):  # the key is checked before anything in the body
            return google_error(refusal)
        if not isinstance(body, dict):
            return google_error(invalid_argument())
        if refusal := gemini_chat_refusal(body, known_fields("openai", "CreateChatCompletionRequest")):
            return google_error(refusal)
        openai_shape = {k: v for k, v in body.items() if k != "extra_body"}
        if next(iter(validator("openai", "CreateChatCompletionRequest").iter_errors(openai_shape)), None):
            return google_error(invalid_argument())  # a value of the wrong shape (Google's wording for it unknown)
        model = str(body["model"]).removeprefix("models/")  # "models/" is added when absent (ai.google.dev/api)
        if model not in self.models:
            return google_error(model_not_found(model))
        behaviour = self._pick(body)
        if behaviour.first_byte_delay:
            await asyncio.sleep(behaviour.first_byte_delay)
        if behaviour.status:
            return google_error(status_refusal(behaviour, model))
        ident, created = response_id(), int(time.time())
        if not body.get("stream"):
            return web.json_response(self._completion(ident, created, model, behaviour, body),
                                     content_type="application/json", dumps=_dumps)
        frames: Iterator[bytes] = (b"data: " + _dumps(chunk).encode() + b"\n\n"
                                   for chunk in self._chunks(ident, created, model, behaviour, body))
        error_after = behaviour.error_after if isinstance(behaviour, GeminiBehaviour) else None
        if error_after is not None:
            return await self._stream(request, _then_error(frames, error_after, model), behaviour, None, end=b"")
        return await self._stream(request, frames, behaviour, behaviour.drop_after)

    @staticmethod
    def _usage(body: dict[str, Any], behaviour: Behaviour) -> dict[str, int]:
        prompt = sum(len(json.dumps(m)) // 4 for m in body.get("messages", []))
        completion = len(behaviour.words)
        return {"completion_tokens": completion, "prompt_tokens": prompt, "total_tokens": prompt + completion}

    def _chunks(self, ident: str, created: int, model: str, behaviour: Behaviour,
                body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        base = {"created": created, "id": ident, "model": model, "object": "chat.completion.chunk"}
        usage = self._usage(body, behaviour) if (body.get("stream_options") or {}).get("include_usage") else None

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            choice: dict[str, Any] = {"delta": {**delta, "role": "assistant"}, "index": 0}
            if finish:
                choice["finish_reason"] = finish
            last = {"usage": usage} if finish and usage else {}
            return {**base, "choices": [choice], **last}

        if behaviour.tool_call:
            # One chunk with the whole call, no "index" in it, finish_reason "tool_calls" (captured gemini-2.5-flash
            # frames in two clients' tests; ids "function-call-<digits>").
            call = {"function": {"arguments": behaviour.tool_call["arguments"], "name": behaviour.tool_call["name"]},
                    "id": f"function-call-{random.randrange(10**18, 10**19)}", "type": "function"}
            yield chunk({"tool_calls": [call]}, "tool_calls")
            return
        words = behaviour.words
        for word in words[:-1]:
            yield chunk({"content": word}, None)
        # The last text comes with finish_reason "stop"; with no text, a role-only delta does.
        yield chunk({"content": words[-1]} if words else {}, "stop")

    def _completion(self, ident: str, created: int, model: str, behaviour: Behaviour,
                    body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"content": "".join(behaviour.words), "role": "assistant"}
        finish = "stop"
        if behaviour.tool_call:
            message = {"role": "assistant", "tool_calls": [
                {"function": dict(behaviour.tool_call), "id": f"function-call-{random.randrange(10**18, 10**19)}",
                 "type": "function"}]}
            finish = "tool_calls"
        return {"choices": [{"finish_reason": finish, "index": 0, "message": message}], "created": created,
                "id": ident, "model": model, "object": "chat.completion", "usage": self._usage(body, behaviour)}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _then_error(frames: Iterator[bytes], after: int, model: str) -> Iterator[bytes]:
    for index, frame in enumerate(frames):
        if index == after:
            break
        yield frame
    yield google_error_body(status_refusal(Behaviour(status=503), model))
