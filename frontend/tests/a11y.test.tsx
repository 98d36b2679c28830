// axe-core's WCAG 2 A/AA and best-practice rules on the page in jsdom: before, during a conversation (with
// pictures, a transcript and the microphone muted) and with the camera open. Colour contrast needs a real
// layout engine: the browser test (tests/e2e) checks it in Chromium.
import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import axe from "axe-core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "../src/App";
import { VOICE_AVAILABLE_KEY } from "../src/lib/settings";
import {
  installApi, installFetch, installMediaCapture, installMicrophone, installXhr, jsonResponse, SESSION, uploaded,
} from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));

async function violations() {
  const report = await axe.run(document, {
    runOnly: ["wcag2a", "wcag2aa", "best-practice"],
    rules: { "color-contrast": { enabled: false } },
  });
  return report.violations.map((violation) => ({
    id: violation.id, impact: violation.impact, nodes: violation.nodes.map((node) => node.target.join(" ")),
  }));
}

beforeEach(() => {
  resetConversations();
  document.documentElement.lang = "en";
  document.title = "Glimpse";
  localStorage.clear();
  localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
  installMicrophone("granted");
  installApi();
  let next = 0;
  vi.stubGlobal("URL", Object.assign(URL, { createObjectURL: vi.fn(() => `blob:p${next++}`), revokeObjectURL: vi.fn() }));
});
afterEach(() => vi.unstubAllGlobals());

describe("accessibility (axe)", () => {
  it("has no violations before a conversation", async () => {
    render(<App transport="websocket" />);
    expect(await violations()).toEqual([]);
  });

  it("has no violations mid-conversation, with pictures, a transcript, an error and the microphone muted", async () => {
    const uploads = installXhr();
    render(<App transport="websocket" />);
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    act(() => started[0].say("agent", "Hi! Show me something."));
    await userEvent.upload(screen.getByLabelText("Choose pictures"), [
      new File([new Uint8Array([1])], "bike.jpg", { type: "image/jpeg" }),
      new File([new Uint8Array([1])], "IMG_1.heic", { type: "image/heic" }),
    ]);
    await waitFor(() => expect(uploads).toHaveLength(1));
    await act(async () => uploaded(uploads[0], "img1"));
    await waitFor(() => expect(uploads).toHaveLength(2));
    act(() => uploads[1].respond(415, { error: { message: "Not a picture the server can read." } }));
    await userEvent.click(screen.getByRole("button", { name: "Mute microphone" }));
    act(() => started[0].serverError("hiccup"));
    expect(await violations()).toEqual([]);
  });

  it("has no violations in a typed conversation on a server without voice, mid-answer, with the demo line", async () => {
    localStorage.clear();
    let answer!: ReadableStreamDefaultController<Uint8Array>;
    installFetch(async (url) => {
      if (url.startsWith("/v1/session")) {
        return jsonResponse({ ...SESSION, signed_url: undefined, agent_id: null, demo_model: true,
                              warning: "No agent." });
      }
      return new Response(new ReadableStream<Uint8Array>({ start: (controller) => { answer = controller; } }),
                          { status: 200, headers: { "Content-Type": "text/event-stream" } });
    });
    render(<App transport="websocket" />);
    expect(await violations()).toEqual([]);
    await screen.findByText(/Demo mode/);
    await userEvent.type(screen.getByRole("textbox", { name: "Message" }), "What is this?{Enter}");
    await waitFor(() => expect(answer).toBeDefined());
    const chunk = { choices: [{ index: 0, delta: { content: "Something about " } }] };
    act(() => answer.enqueue(new TextEncoder().encode(`data: ${JSON.stringify(chunk)}\n\n`)));
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("Answering"));
    expect(await violations()).toEqual([]);
    act(() => answer.enqueue(new TextEncoder().encode('data: {"error": {"message": "x"}}\n\n')));
    await screen.findByRole("alert");
    expect(await violations()).toEqual([]);
  });

  it("has no violations with Type instead open during a call", async () => {
    render(<App transport="websocket" />);
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    await userEvent.click(screen.getByRole("button", { name: "Type instead" }));
    await userEvent.type(screen.getByRole("textbox", { name: "Message" }), "Hello{Enter}");
    expect(await violations()).toEqual([]);
  });

  it("has no violations with the camera open, and the page behind it is inert", async () => {
    const capture = installMediaCapture();
    try {
      render(<App transport="websocket" />);
      await userEvent.click(screen.getByRole("button", { name: "Take a photo" }));
      const dialog = screen.getByRole("dialog", { name: "Take a photo" });
      await waitFor(() => expect(within(dialog).getByRole("button", { name: "Capture photo" })).toBeEnabled());
      expect(document.querySelector(".app")).toHaveAttribute("inert");
      expect(await violations()).toEqual([]);
      await userEvent.keyboard("{Escape}");
      expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
      expect(screen.getByRole("button", { name: "Take a photo" })).toHaveFocus();
    } finally {
      capture.restore();
    }
  });
});
