"""The OpenAPI 3 document for the proxy's own routes, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..chat.completions import ROLES
from ..chat.responses import INPUT_ROLES
from ..conversation.ids import SESSION_ID_REGEX
from ..conversation.sessions import TRANSPORTS

ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "OpenAI-style error", "content": {"application/json": {"schema": ERROR}}}
            for s in statuses}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


WARNING_FIELD = "What does not work on this server, in words the page may show (no agent: no voice; the demo model)"
DEMO_MODEL_FIELD = ("True when no upstream LLM is configured: answers come from the built-in demo model, which "
                    "measures pictures (size, colours, brightness) and does not understand them")

SESSION_FIELDS = {
    "session_id": {"type": "string", "pattern": SESSION_ID_REGEX},
    "upload_token": {"type": "string"},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Glimpse proxy", "version": __version__,
             "description": "An image-aware OpenAI-compatible Custom LLM server for ElevenLabs voice agents."},
    "paths": {
        "/v1/chat/completions": {"post": {
            "summary": "OpenAI Chat Completions, with the conversation's images injected",
            "security": [{"bearer": []}, {}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ChatRequest"}}}},
            "responses": {"200": {"description": "A completion, or an SSE stream when stream is true",
                                  "content": {"application/json": {"schema": {"type": "object"}},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 404, 413, 429, 502, 503, 504)}}},
        "/v1/responses": {"post": {
            "summary": "OpenAI Responses API (agents whose custom LLM api_type is responses), images injected",
            "security": [{"bearer": []}, {}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ResponsesRequest"}}}},
            "responses": {"200": {"description": "A response, or its SSE events when stream is true",
                                  "content": {"application/json": {"schema": {"type": "object"}},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 404, 413, 429, 501, 502, 503, 504)}}},
        "/v1/models": {"get": {"summary": "The upstream's models", "security": [{"bearer": []}, {}],
                               "responses": {"200": _json({"type": "object"}), **_errors(401, 502, 504)}}},
        "/v1/session": {"get": {
            "summary": "A new session: id, read key, upload token and an ElevenLabs signed URL or conversation token",
            "parameters": [{"name": "transport", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": list(TRANSPORTS)}},
                           {"name": "voice", "in": "query", "required": False, "schema": {"type": "boolean"},
                            "description": "false: no signed URL or token is minted (typed conversations)"}],
            "responses": {"200": _json({"type": "object", "required": ["session_id", "session_key", "upload_token"],
                                        "properties": {**SESSION_FIELDS, "session_key": {"type": "string"},
                                                       "max_images": {"type": "integer"}, "voice": {"type": "boolean"},
                                                       "signed_url": {"type": "string"},
                                                       "conversation_token": {"type": "string"},
                                                       "warning": {"type": "string", "description": WARNING_FIELD},
                                                       "demo_model": {"type": "boolean",
                                                                      "description": DEMO_MODEL_FIELD}}}),
                          **_errors(400, 429, 502, 503)}}},
        "/v1/images": {"post": {
            "summary": "Upload an image for a session",
            "parameters": [{"name": "X-Upload-Token", "in": "header", "required": False, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "description": "`session_id` (and `upload_token`, unless in the "
                            "header) before `file`: the upload is checked before its file is read.",
                            "content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["session_id", "file"],
                "properties": {**SESSION_FIELDS, "file": {"type": "string", "format": "binary"},
                               "ready": {"type": "string", "enum": ["true", "false"]}}}}}},
            "responses": {"201": _json({"$ref": "#/components/schemas/Upload"}, "Stored"),
                          **_errors(400, 401, 403, 408, 413, 415, 429, 503, 507)}}},
        "/v1/images/ready": {"post": {
            "summary": "Staged images of a session become pending for its next user turn",
            "parameters": [{"name": "X-Upload-Token", "in": "header", "required": False, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["session_id"], "properties": SESSION_FIELDS}}}},
            "responses": {"200": _json({"type": "object"}), **_errors(400, 401, 403, 413, 503)}}},
        "/v1/images/{image_id}": {"get": {
            "summary": "A stored image, with a valid unexpired signature",
            "parameters": [
                {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "expires", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "sig", "in": "query", "required": False, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "The image", "content": {
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}}}}, **_errors(403, 404)}},
            "delete": {
                "summary": "Detach an image from the session's conversation and delete it; later turns no longer "
                           "carry it",
                "parameters": [
                    {"name": "image_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "session_id", "in": "query", "required": False,
                     "schema": SESSION_FIELDS["session_id"]},
                    {"name": "X-Upload-Token", "in": "header", "required": False, "schema": {"type": "string"}}],
                "requestBody": {"required": False, "content": {"application/json": {"schema": {
                    "type": "object", "properties": SESSION_FIELDS}}}},
                "responses": {"200": _json({"type": "object", "required": ["image_id", "deleted", "images"],
                                            "properties": {"image_id": {"type": "string"},
                                                           "deleted": {"type": "boolean", "enum": [True]},
                                                           "images": {"type": "integer", "minimum": 0}}},
                                           "Deleted; `images`: how many the conversation still holds"),
                              **_errors(400, 401, 403, 404, 413, 503)}}},
        "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"})}}},
        "/readyz": {"get": {"summary": "Readiness (store and storage reachable, not draining)",
                            "responses": {"200": _json({"type": "object"}), "503": _json({"type": "object"})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics",
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["message", "type"],
                "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                               "code": {"type": "string", "nullable": True},
                               "param": {"type": "string", "nullable": True}}}}},
            "ChatRequest": {"type": "object", "required": ["messages"], "properties": {
                "model": {"type": "string"},
                "messages": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["role"],
                    "properties": {"role": {"type": "string", "enum": list(ROLES)}}}},
                "stream": {"type": "boolean"},
                "user_id": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "object"}},
                "elevenlabs_extra_body": {"type": "object"}}},
            "ResponsesRequest": {"type": "object", "required": ["input"], "properties": {
                "model": {"type": "string"},
                "input": {"oneOf": [{"type": "string"}, {"type": "array", "minItems": 1, "items": {
                    "type": "object", "properties": {"role": {"type": "string", "enum": list(INPUT_ROLES)}}}}]},
                "stream": {"type": "boolean"},
                "user_id": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "object"}},
                "elevenlabs_extra_body": {"type": "object"}}},
            "Upload": {"type": "object", "required": ["image_id", "url", "session_id", "expires_at"], "properties": {
                "image_id": {"type": "string"}, "url": {"type": "string"}, "session_id": {"type": "string"},
                "expires_at": {"type": "integer"}, "status": {"type": "string", "enum": ["pending", "staged"]}}},
        },
    },
}
