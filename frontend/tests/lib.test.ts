import { describe, expect, it } from "vitest";

import { errorFromResponse } from "../src/lib/api";
import { fitWithin, MAX_EDGE } from "../src/lib/downscale";
import { isImageFile } from "../src/lib/imageFiles";
import { describeMicrophoneFailure } from "../src/lib/microphone";

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
    expect(errorFromResponse(418, "").message).toBe("The server answered 418.");
  });
  it("names each microphone failure", () => {
    expect(describeMicrophoneFailure(new DOMException("", "NotAllowedError"))).toMatch(/refused/);
    expect(describeMicrophoneFailure(new DOMException("", "NotReadableError"))).toMatch(/busy/);
    expect(describeMicrophoneFailure(new Error("?"))).toMatch(/could not be started/);
  });
});

describe("isImageFile", () => {
  it("accepts images and untyped camera files, not documents", () => {
    expect(isImageFile(new File([], "a.heic", { type: "image/heic" }))).toBe(true);
    expect(isImageFile(new File([], "IMG_0001"))).toBe(true);
    expect(isImageFile(new File([], "a.pdf", { type: "application/pdf" }))).toBe(false);
  });
});
