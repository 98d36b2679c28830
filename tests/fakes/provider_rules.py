"""What the real upstreams refuse, as pure functions the fakes call: OpenAI's reasoning models on Chat Completions,
and Gemini's OpenAI-compatible endpoint.

Every rule carries the source it follows. A rule is here only when a source shows the real service refusing (a
documented limitation, the SDK's own docstring, or a captured error body); what no source settles is accepted, and
listed as unverified at the end of each section, so the fakes are neither kinder nor stricter than what is known.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

# ---------------------------------------------------------------------------------------------------------------
# OpenAI, POST /v1/chat/completions
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenAIRefusal:
    """OpenAI's 400 body: {"error": {"message", "type": "invalid_request_error", "param", "code"}}."""

    message: str
    param: str | None
    code: str | None


@dataclass(frozen=True)
class OpenAIModel:
    """How a model id takes the reasoning-model rules. `efforts` None: reasoning_effort is not checked."""

    kind: Literal["reasoning", "chat", "unknown"]
    efforts: tuple[str, ...] | None = None
    default_effort: str | None = None
    sampling_at_none: bool = False  # temperature, top_p, logprobs, penalties accepted at reasoning_effort "none"
    parallel_tool_calls: bool = True


# openai-python, src/openai/types/chat/completion_create_params.py (2.x, before 2.45): "All models before gpt-5.1
# default to medium reasoning effort, and do not support none"; gpt-5-mini's own 400 lists "'minimal', 'low', 'medium',
# and 'high'" (microsoft/vscode#300649).
GPT5 = OpenAIModel("reasoning", ("minimal", "low", "medium", "high"), "medium")
# Same docstring: "gpt-5.1 defaults to none … The supported reasoning values for gpt-5.1 are none, low, medium, and
# high"; the 400 for 'minimal' says so (openai/openai-agents-python#2089); sampling at none: vercel/ai#10932 quoting
# the GPT-5.1/5.2 guide ("temperature, top_p and logprobs … when reasoning effort is set to none").
GPT51 = OpenAIModel("reasoning", ("none", "low", "medium", "high"), "none", sampling_at_none=True)
# Same docstring: "xhigh is supported for all models after gpt-5.1-codex-max"; gpt-5.2's default is none (GPT-5.2
# guide); 'max' refused with "Supported values are: 'none', 'low', 'medium', 'high', and 'xhigh'" (captured on a
# gpt-5.6 model, a third-party conformance table), so 'max' is not in the list.
GPT52_ON = OpenAIModel("reasoning", ("none", "low", "medium", "high", "xhigh"), "none", sampling_at_none=True)
# o1 and o3-mini take low/medium/high (dzhng/deep-research#89 citing the API reference); o1, o3-mini, o3 and o4-mini
# refuse parallel_tool_calls (langchain-ai/langchain#29416, microsoft/semantic-kernel#10365,
# evalstate/fast-agent#279, defog-ai/defog#171).
O_SERIES = OpenAIModel("reasoning", ("low", "medium", "high"), "medium", parallel_tool_calls=False)
# o1-mini and o1-preview take no reasoning_effort at all (dzhng/deep-research#89), refusal wording unknown: unchecked.
O1_MINI = OpenAIModel("reasoning", None, None, parallel_tool_calls=False)
CHAT = OpenAIModel("chat")
UNKNOWN = OpenAIModel("unknown")

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def openai_model(model: object) -> OpenAIModel:
    """The rules a model id answers to. Only families a source describes are classified; the rest are unknown."""
    if not isinstance(model, str):
        return UNKNOWN
    name = _DATED.sub("", model)
    if name in ("gpt-5-chat-latest", "gpt-5-chat"):
        return CHAT  # a non-reasoning chat model: takes temperature, no reasoning_effort (learnku.com/articles/90544)
    if re.fullmatch(r"gpt-5(-mini|-nano)?", name):
        return GPT5
    if re.fullmatch(r"gpt-5\.1(-mini|-nano)?", name):
        return GPT51
    if (m := re.fullmatch(r"gpt-5\.(\d+)(-mini|-nano)?", name)) and int(m.group(1)) >= 2:
        return GPT52_ON
    if name in ("o1", "o3", "o3-mini", "o4-mini"):
        return O_SERIES
    if name in ("o1-mini", "o1-preview"):
        return O1_MINI
    if re.match(r"(gpt-4|gpt-3\.5|chatgpt-4o)", name):
        return CHAT  # gpt-4o, gpt-4o-mini, gpt-4.1 …
    return UNKNOWN  # gpt-5.x-chat-latest, *-pro, *-codex, fault-500 …: no source settles them


def _unsupported_parameter(param: str, advice: str = "") -> OpenAIRefusal:
    return OpenAIRefusal(f"Unsupported parameter: '{param}' is not supported with this model.{advice}", param,
                         "unsupported_parameter")


def _quoted(value: Any) -> str:
    return "null" if value is None else f"'{value}'" if isinstance(value, str) else str(value)


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def unrecognized(name: str) -> OpenAIRefusal:
    # An argument the model does not know: "Unrecognized request argument supplied: reasoning_effort", param and code
    # null (gpt-4o, AAswordman/Operit#1048, 2026-08; namankhurpia/Easy-open-ai#36 for `topP`).
    return OpenAIRefusal(f"Unrecognized request argument supplied: {name}", None, None)


def openai_chat_refusal(body: dict[str, Any]) -> OpenAIRefusal | None:
    """The 400 OpenAI answers a schema-valid Chat Completions body with, for the model it names; None to accept.
    Checked in this order (the order OpenAI reports two faults in is not known)."""
    model = openai_model(body.get("model"))
    if model.kind == "chat":
        if body.get("reasoning_effort") is not None:
            return unrecognized("reasoning_effort")  # non-reasoning models do not know it (Operit#1048, gpt-4o)
        return None
    if model.kind != "reasoning":
        return None
    if model.efforts is not None and "reasoning_effort" in body:
        effort = body["reasoning_effort"]
        # gpt-5.1 refuses an explicit null: "'reasoning_effort' does not support null with this model" (livekit/agents
        # #3966); other families accept null as the schema allows (not known otherwise).
        if (effort is None and model.sampling_at_none) or (effort is not None and effort not in model.efforts):
            return OpenAIRefusal(f"Unsupported value: 'reasoning_effort' does not support {_quoted(effort)} with this "
                                 f"model. Supported values are: {_listed(model.efforts)}.", "reasoning_effort",
                                 "unsupported_value")
    if body.get("max_tokens") is not None:
        # "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
        # instead." (griptape-ai/ComfyUI-Griptape#312 gpt-5, teilomillet/gollm#33 o1/o3-mini, fish2018/YPrompt#26
        # gpt-5.1); the SDK docstring: max_tokens "is not compatible with o-series models".
        return _unsupported_parameter("max_tokens", " Use 'max_completion_tokens' instead.")
    effort = body.get("reasoning_effort") or model.default_effort
    reasoning = not (model.sampling_at_none and effort == "none")
    temperature = body.get("temperature")
    if reasoning and temperature is not None and temperature != 1:
        # "Unsupported value: 'temperature' does not support 0.5 with this model. Only the default (1) value is
        # supported." (diffbot/code-gpt-docs#445 gpt-5; QwenLM/qwen-code#921 gpt-5-mini; OpenHands#4131 o1-mini).
        return OpenAIRefusal(f"Unsupported value: 'temperature' does not support {temperature} with this model. "
                             "Only the default (1) value is supported.", "temperature", "unsupported_value")
    top_p = body.get("top_p")
    if reasoning and top_p is not None and top_p != 1:
        # "Unsupported parameter: 'top_p' is not supported with this model." (vibrantlabsai/ragas#2440 gpt-5-mini,
        # HIllya51/LunaTranslator#1842 gpt-5, aandrew-me/tgpt#333 o1-preview); top_p 1 accepted (zenn.dev/headwaters,
        # gpt-5-mini).
        return _unsupported_parameter("top_p")
    for penalty in ("presence_penalty", "frequency_penalty"):
        value = body.get(penalty)
        if reasoning and value is not None and value != 0:
            # "Unsupported parameter: 'presence_penalty' is not supported with this model." (nextai-translator#1781
            # gpt-5-mini, TabbyML/tabby#3974 o3-mini); 0 accepted (zenn.dev/headwaters); platform.openai.com/docs/
            # guides/reasoning#limitations lists both.
            return _unsupported_parameter(penalty)
    if reasoning and body.get("logprobs") is True:
        # "Unsupported parameter: 'logprobs' is not supported with this model." (gpt-5.x, captured by several
        # evaluation repos; confident-ai/deepeval#2805: the gpt-5 family exposes no logprobs).
        return _unsupported_parameter("logprobs")
    if reasoning and body.get("top_logprobs") is not None:
        # guides/reasoning#limitations (as vercel/ai openai-chat-language-model.ts applies it: "topLogprobs is not
        # supported for reasoning models"); the wording follows the other unsupported_parameter refusals.
        return _unsupported_parameter("top_logprobs")
    if body.get("logit_bias"):
        # "Unsupported parameter: 'logit_bias' is not supported with this model." whatever the effort (captured on a
        # gpt-5.6 model; guides/reasoning#limitations, as vercel/ai applies it).
        return _unsupported_parameter("logit_bias")
    if not model.parallel_tool_calls and body.get("parallel_tool_calls") is not None:
        # "Unsupported parameter: 'parallel_tool_calls' is not supported with this model." (o4-mini,
        # evalstate/fast-agent#279, even at false; o3-mini semantic-kernel#10365; o1 langchain#29416).
        return _unsupported_parameter("parallel_tool_calls")
    return None


# Unverified, so not enforced: the order OpenAI reports several faults in; what o1-mini/o1-preview say to
# reasoning_effort; the gpt-5.x-chat-latest, *-pro and *-codex models; gpt-5.2+'s default effort beyond 5.2; whether
# logprobs false, an empty logit_bias or reasoning_effort null (before 5.1) are refused; penalties at effort "none"
# on gpt-5.1 (accepted, as captured on gpt-5.6).


# ---------------------------------------------------------------------------------------------------------------
# Gemini, POST /v1beta/openai/chat/completions (generativelanguage.googleapis.com)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleRefusal:
    """A google.rpc.Status: HTTP status, code, message, status name and details."""

    http_status: int
    message: str
    status: str
    details: tuple[dict[str, Any], ...] = ()

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.http_status, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = list(self.details)
        return error


# OpenAI Chat Completions fields Gemini's compatibility layer has no field for: a 400 "Invalid JSON payload received.
# Unknown name \"store\": Cannot find field." — store and metadata (ed-donner/agents#45, liliMozi/openhanako#394,
# a Vapi custom-LLM proxy's comment), prompt_cache_key (two third-party clients' code: "Google validates the payload
# strictly … Unknown name \"prompt_cache_key\"").
GEMINI_UNKNOWN_OPENAI_FIELDS = ("store", "metadata", "prompt_cache_key")
# Top-level fields Gemini takes that OpenAI does not: `extra_body` (ai.google.dev/gemini-api/docs/openai, "extra_body":
# {"google": {...}} sent as a body field); a top-level "google" is refused (Alishahryar1/free-claude-code#542).
GEMINI_EXTRA_FIELDS = ("extra_body",)


def _unknown_names(names: list[str]) -> GoogleRefusal:
    descriptions = [f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.' for name in names]
    # One line per unknown name in the message, one fieldViolation each (ed-donner/agents#45: metadata and store).
    return GoogleRefusal(400, "\n".join(descriptions), "INVALID_ARGUMENT", ({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"description": d} for d in descriptions]},))


def invalid_argument() -> GoogleRefusal:
    # Google's generic 400 for a value it cannot use (zhu327/gemini-openai-proxy#14, su-kaka/gcli2api#297).
    return GoogleRefusal(400, "Request contains an invalid argument.", "INVALID_ARGUMENT")


def gemini_chat_refusal(body: dict[str, Any], openai_fields: frozenset[str]) -> GoogleRefusal | None:
    """The 400 Gemini's endpoint answers a Chat Completions body with; None to accept. `openai_fields`: the top-level
    fields OpenAI's schema allows (a field neither OpenAI nor Gemini knows is refused by name as well)."""
    known = (openai_fields - set(GEMINI_UNKNOWN_OPENAI_FIELDS)) | set(GEMINI_EXTRA_FIELDS)
    unknown = [name for name in body if name not in known]
    if unknown:
        # The request is parsed into Google's own message first (gRPC transcoding): any name it lacks is a 400,
        # e.g. "reasoning" (a third-party client's comment, "confirmed live"), "google" (free-claude-code#542).
        return _unknown_names(unknown)
    for message in body.get("messages") or []:
        parts = message.get("content") if isinstance(message, dict) else None
        for part in parts if isinstance(parts, list) else []:
            if not (isinstance(part, dict) and part.get("type") == "image_url"):
                continue
            url = str((part.get("image_url") or {}).get("url", ""))
            # Images go inline as base64 data: URLs (ai.google.dev/gemini-api/docs/openai, "Image understanding";
            # the cookbook's Get_started_OpenAI_Compatibility downloads and base64-encodes even public images); a
            # remote URL is a 400 (songquanpeng/one-api#2245) — its wording is not published, the generic one is used.
            if not _inline_image(url):
                return invalid_argument()
    return None


def _inline_image(url: str) -> bool:
    match = re.fullmatch(r"data:image/[\w.+-]+;base64,(.*)", url, re.DOTALL)
    if match is None:
        return False
    try:
        base64.b64decode(match.group(1), validate=True)
    except (binascii.Error, ValueError):
        return False  # "Base64 decoding failed" (musistudio/claude-code-router#845, the native API's wording)
    return True


# Unverified, so accepted: logit_bias, logprobs, top_logprobs, service_tier, safety_identifier, verbosity, prediction,
# web_search_options, prompt_cache_retention, seed, user and parallel_tool_calls (the last two are in Google's
# ChatCompletionsRequest as mscraftsman/generative-ai mirrors it: user "Not used, only for compatibility with the
# SDK"); reasoning_effort values per model, and reasoning_effort together with extra_body thinking_config (the docs
# say they overlap; the refusal's wording is unknown); the wording of the remote-image refusal.
