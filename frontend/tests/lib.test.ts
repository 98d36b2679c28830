import { describe, expect, it } from "vitest";

import { errorFromResponse } from "../src/lib/api";
import { chatBody, chatErrorFromResponse, DEMO_MODEL, SseParser } from "../src/lib/chat";
import { fitWithin, MAX_EDGE, prepareImage } from "../src/lib/downscale";
import { isHeic, isImageFile } from "../src/lib/imageFiles";
import { describeMicrophoneFailure } from "../src/lib/microphone";
import { describeVoiceFailure, NO_ANSWER, plainWords } from "../src/lib/plainWords";
import { bandsOf, levelOf } from "../src/lib/useAudioLevels";
import { reactionText } from "../src/lib/useReactToPictures";
import { Heartbeat, LIVENESS_MS } from "../src/lib/voice/heartbeat";

describe("fitWithin", () => {
  it("shrinks the longer edge to the limit and keeps the aspect ratio", () => {
    expect(fitWithin({ width: 4032, height: 3024 })).toEqual({ width: MAX_EDGE, height: 1200 });
    expect(fitWithin({ width: 3024, height: 4032 })).toEqual({ width: 1200, height: MAX_EDGE });
  });
  it("never enlarges", () => {
    expect(fitWithin({ width: 800, height: 600 })).toEqual({ width: 800, height: 600 });
  });
  it("keeps a sliver at least one pixel wide", () => {
    expect(fitWithin({ width: 100_000, height: 10 }, 1000)).toEqual({ width: 1000, height: 1 });
  });
});

describe("errors in words", () => {
  it("uses the proxy's OpenAI-style message", () => {
    const error = errorFromResponse(415, JSON.stringify({ error: { message: "Not an image.", type: "x" } }));
    expect(error.message).toBe("Not an image.");
    expect(error.status).toBe(415);
  });
  it("falls back to a sentence per status when the body is not ours", () => {
    expect(errorFromResponse(413, "<html>").message).toMatch(/too large/);
    expect(errorFromResponse(418, "").message).toBe("The server refused the request (418).");
    expect(errorFromResponse(500, "").message).toBe("The server had a problem. Try again in a moment.");
  });
  it("never names a vendor, nor shows a programmer's message", () => {
    const vendor = errorFromResponse(502, JSON.stringify({ error: { message: "OpenAI returned 500 from gpt-4o." } }));
    expect(vendor.message).toBe("The voice service did not answer. Try again in a moment.");
    const technical = errorFromResponse(400, JSON.stringify({ error: { message: "TypeError: x is undefined" } }));
    expect(technical.message).toBe("The server refused the request (400).");
    expect(plainWords("Signed URL refused by ElevenLabs", "fallback")).toBe("fallback");
    expect(plainWords("{\"detail\": 1}", "fallback")).toBe("fallback");
    expect(plainWords("The image is larger than 10 MB.", "fallback")).toBe("The image is larger than 10 MB.");
  });
  it("words the picture limit itself, with the code the proxy sends", () => {
    for (const [status, code] of [[400, "too_many_images"], [413, "session_quota_exceeded"],
                                  [429, "session_quota_exceeded"]] as const) {
      const error = errorFromResponse(status, JSON.stringify({ error: { message: "…", code } }));
      expect(error.code).toBe(code);
      expect(error.message).toMatch(/Remove one to share another\.$/);
    }
  });
  it("names each microphone failure", () => {
    expect(describeMicrophoneFailure(new DOMException("", "NotAllowedError"))).toMatch(/refused/);
    expect(describeMicrophoneFailure(new DOMException("", "NotReadableError"))).toMatch(/busy/);
    expect(describeMicrophoneFailure(new Error("?"))).toMatch(/could not be started/);
  });
  it("says what a voice failure means to the person", () => {
    expect(describeVoiceFailure("custom_llm generation failed", { duringTurn: false })).toBe(NO_ANSWER);
    expect(describeVoiceFailure("Connection closed", { duringTurn: true })).toBe(NO_ANSWER);
    expect(describeVoiceFailure("max_duration_exceeded", { duringTurn: false })).toMatch(/time limit/);
    expect(describeVoiceFailure("Override for field 'voice_id' is not allowed by config.", { duringTurn: false }))
      .toMatch(/refused the conversation/);
    expect(describeVoiceFailure(undefined, { duringTurn: false })).toMatch(/connection was lost/);
  });
});

describe("isImageFile", () => {
  it("accepts images and untyped camera files, not documents", () => {
    expect(isImageFile(new File([], "a.heic", { type: "image/heic" }))).toBe(true);
    expect(isImageFile(new File([], "IMG_0001"))).toBe(true);
    expect(isImageFile(new File([], "a.pdf", { type: "application/pdf" }))).toBe(false);
  });
  it("knows HEIC and HEIF by type or by name", () => {
    expect(isHeic(new File([], "a.jpg", { type: "image/heif" }))).toBe(true);
    expect(isHeic(new File([], "b.jpg", { type: "image/heic-sequence" }))).toBe(true);
    expect(isHeic(new File([], "IMG_1.HEIC", { type: "application/octet-stream" }))).toBe(true);
    expect(isImageFile(new File([], "IMG_1.HEIC", { type: "application/octet-stream" }))).toBe(true);
    expect(isHeic(new File([], "a.jpg", { type: "image/jpeg" }))).toBe(false);
  });
  it("sends HEIC as it is: the browser cannot redraw it, the server converts it", async () => {
    const heic = new File([new Uint8Array([1, 2, 3])], "IMG_1.heic", { type: "image/heic" });
    const prepared = await prepareImage(heic);
    expect(prepared.blob).toBe(heic);
    expect(prepared.fileName).toBe("IMG_1.heic");
  });
});

describe("Heartbeat", () => {
  it("is not armed until the server has pinged twice", () => {
    const beat = new Heartbeat();
    beat.reset(0);
    beat.event("ping", 0);
    expect(beat.dead(60_000)).toBe(false);
    beat.event("ping", 2_000);
    expect(beat.armed).toBe(true);
    expect(beat.dead(2_000 + LIVENESS_MS)).toBe(false);
    expect(beat.dead(2_000 + LIVENESS_MS + 1)).toBe(true);
  });
  it("any server event is a sign of life", () => {
    const beat = new Heartbeat();
    beat.reset(0);
    beat.event("ping", 1_000);
    beat.event("ping", 3_000);
    beat.event("audio", 10_000);
    expect(beat.dead(17_000)).toBe(false);
    expect(beat.dead(18_001)).toBe(true);
  });
  it("waits longer for a server that pings slowly", () => {
    const beat = new Heartbeat();
    beat.reset(0);
    beat.event("ping", 0);
    beat.event("ping", 5_000);
    expect(beat.bound).toBe(15_000);
    expect(beat.dead(5_000 + 12_000)).toBe(false);
    beat.reset(0);
    beat.event("ping", 0);
    beat.event("ping", 60_000);
    expect(beat.bound).toBe(30_000);
  });
});

describe("react-at-once wording", () => {
  it("reads naturally for one picture or several", () => {
    expect(reactionText(1)).toBe("I'm showing you a picture.");
    expect(reactionText(3)).toBe("I'm showing you 3 pictures.");
  });
});

describe("audio levels", () => {
  it("turns a volume into a level that shows speech", () => {
    expect(levelOf(0)).toBe(0);
    expect(levelOf(0.1)).toBeGreaterThan(0.5);
    expect(levelOf(2)).toBe(1);
  });
  it("splits the voice part of the spectrum into bands", () => {
    const data = new Uint8Array(1024);
    data.fill(200, 0, 68); // loud lows
    const bands = bandsOf(data, 5);
    expect(bands).toHaveLength(5);
    expect(bands[0]).toBe(1);
    expect(bands[4]).toBe(0);
    expect(bandsOf(new Uint8Array(0), 5)).toEqual([0, 0, 0, 0, 0]);
  });
});

describe("SseParser", () => {
  it("gives each event's data, however the stream is cut", () => {
    const parser = new SseParser();
    expect(parser.feed("data: {\"a\":")).toEqual([]);
    expect(parser.feed("1}\n")).toEqual([]);
    expect(parser.feed("\ndata: [DO")).toEqual(['{"a":1}']);
    expect(parser.feed("NE]\r\n\r\n")).toEqual(["[DONE]"]);
  });
  it("ignores comments and other fields, joins multi-line data, and flushes at the end", () => {
    const parser = new SseParser();
    expect(parser.feed(": keep-alive\n\nevent: x\nid: 3\ndata:one\ndata: two\n\n")).toEqual(["one\ntwo"]);
    expect(parser.feed("data: last")).toEqual([]);
    expect(parser.end()).toEqual(["last"]);
  });
});

describe("typed turns", () => {
  const session = { session_id: "s", session_key: "k", upload_token: "t", upload_token_expires_at: 1, agent_id: null,
                    transport: "websocket" as const };
  it("asks the demo model by name only when the server has one", () => {
    expect(chatBody({ ...session, demo_model: true }, []).model).toBe(DEMO_MODEL);
    expect(chatBody(session, [])).not.toHaveProperty("model");
    expect(chatBody(session, []).elevenlabs_extra_body).toEqual({ session_id: "s", session_key: "k" });
  });
  it("words a refused turn for the person, never the proxy's API terms", () => {
    const body = (message: string) => JSON.stringify({ error: { message } });
    expect(chatErrorFromResponse(401, body("Missing or invalid bearer token.")).message)
      .toBe("This server does not accept typed messages.");
    expect(chatErrorFromResponse(502, body("The upstream LLM stream failed before its first token.")).message)
      .toBe(NO_ANSWER);
    expect(chatErrorFromResponse(503, "").message).toMatch(/busy or restarting/);
    expect(chatErrorFromResponse(429, body("Too many turns; wait a minute.")).message).toBe("Too many turns; wait a minute.");
    expect(chatErrorFromResponse(400, body("`model` is required (or set GLIMPSE_UPSTREAM_MODEL).")).message)
      .toMatch(/^The message could not be sent/);
    expect(chatErrorFromResponse(418, "<html>").message).toBe("The server refused the message (418).");
  });
  it("keeps the proxy's operator terms out of plain words", () => {
    expect(plainWords("The upstream LLM answered with something that is not a JSON object.", "f")).toBe("f");
    expect(plainWords("Missing or invalid bearer token for the custom LLM endpoint.", "f")).toBe("f");
    expect(plainWords("The server is shutting down; retry on another replica.", "f")).toBe("f");
  });
});
