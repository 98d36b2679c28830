import { act, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { StrictMode } from "react";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "../src/App";
import { deferred, installFetch, installMicrophone, jsonResponse, SESSION } from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));

function renderPage() {
  return render(
    <StrictMode>
      <App transport="websocket" />
    </StrictMode>,
  );
}

const status = () => screen.getByRole("status");

/** The page with a conversation that the fake voice service has accepted. */
async function startConnected() {
  installFetch();
  const page = renderPage();
  await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
  await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
  act(() => started[0].connect());
  return page;
}

beforeEach(() => {
  resetConversations();
  installMicrophone("granted");
});
afterEach(() => vi.unstubAllGlobals());

describe("connecting", () => {
  it("asks for the microphone, then the session, then starts one ElevenLabs session with the session id", async () => {
    const fetchMock = installFetch();
    const { getUserMedia, stop } = installMicrophone("granted");
    renderPage();
    expect(status()).toHaveTextContent("Not connected");

    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));

    expect(getUserMedia).toHaveBeenCalledWith({ audio: true });
    expect(stop).toHaveBeenCalled(); // the probe stream is released; the SDK opens its own
    expect(getUserMedia.mock.invocationCallOrder[0]).toBeLessThan(fetchMock.mock.invocationCallOrder[0]);
    expect(fetchMock.mock.calls[0][0]).toBe("/v1/session?transport=websocket");
    const options = startSession.mock.calls[0][0];
    expect(options.signedUrl).toBe(SESSION.signed_url);
    expect(options.connectionType).toBe("websocket");
    expect(options.customLlmExtraBody).toEqual({ session_id: SESSION.session_id, session_key: SESSION.session_key });
    expect(status()).toHaveTextContent("Connecting");

    act(() => started[0].connect());
    expect(status()).toHaveTextContent("Listening");
    act(() => started[0].mode("speaking"));
    expect(status()).toHaveTextContent("Agent is speaking");
    expect(screen.getByText("The agent is speaking…")).toBeInTheDocument();
    act(() => started[0].mode("listening"));
    expect(status()).toHaveTextContent("Listening");
  });

  it("uses a conversation token over WebRTC when asked", async () => {
    const fetchMock = installFetch(async () =>
      jsonResponse({ ...SESSION, transport: "webrtc", signed_url: undefined, conversation_token: "eyJtoken" }));
    render(<App transport="webrtc" />);
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    expect(fetchMock.mock.calls[0][0]).toBe("/v1/session?transport=webrtc");
    const options = startSession.mock.calls[0][0];
    expect(options).toMatchObject({ conversationToken: "eyJtoken", connectionType: "webrtc",
                                     customLlmExtraBody: { session_id: SESSION.session_id, session_key: SESSION.session_key } });
    expect(options.signedUrl).toBeUndefined();
  });

  it("starts one session under StrictMode however often Start is pressed", async () => {
    const answer = deferred<Response>();
    const fetchMock = installFetch(() => answer.promise);
    renderPage();
    const start = screen.getByRole("button", { name: "Start conversation" });
    // A double click lands twice before React re-renders the button: the second press must not start again.
    act(() => {
      start.click();
      start.click();
    });
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    answer.resolve(jsonResponse(SESSION));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(startSession).toHaveBeenCalledTimes(1);
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it("ends the session when the page unmounts", async () => {
    const page = await startConnected();
    page.unmount();
    await waitFor(() => expect(started[0].ended).toBeGreaterThanOrEqual(1));
    expect(started).toHaveLength(1);
  });

  it("unmounting while the session is being fetched aborts it and never opens a voice session", async () => {
    const answer = deferred<Response>();
    let signal: AbortSignal | undefined;
    installFetch((_url, init) => {
      signal = init?.signal ?? undefined;
      return answer.promise;
    });
    const page = renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(signal).toBeDefined());
    page.unmount();
    expect(signal!.aborted).toBe(true);
    answer.resolve(jsonResponse(SESSION));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(startSession).not.toHaveBeenCalled();
  });

  it("End conversation ends the session and returns to idle; Start opens a new one", async () => {
    await startConnected();
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(started[0].endSession).toHaveBeenCalledTimes(1);
    expect(status()).toHaveTextContent("Not connected");
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(2));
  });
});

describe("keyboard", () => {
  it("starts, mutes and ends a conversation without a mouse", async () => {
    installFetch();
    renderPage();
    await userEvent.tab();
    expect(screen.getByRole("button", { name: "Start conversation" })).toHaveFocus();
    await userEvent.keyboard("{Enter}");
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    await userEvent.tab();
    expect(screen.getByRole("button", { name: "Mute microphone" })).toHaveFocus();
    await userEvent.keyboard(" ");
    expect(started[0].setMicMuted).toHaveBeenCalledWith(true);
    expect(screen.getByRole("button", { name: "Unmute microphone" })).toHaveAttribute("aria-pressed", "true");
    await userEvent.tab({ shift: true });
    expect(screen.getByRole("button", { name: "End conversation" })).toHaveFocus();
    await userEvent.keyboard("{Enter}");
    expect(started[0].endSession).toHaveBeenCalledTimes(1);
  });

  it("reaches the picture picker from the keyboard", async () => {
    installFetch();
    renderPage();
    await userEvent.tab();
    await userEvent.tab();
    expect(screen.getByLabelText("Choose pictures")).toHaveFocus();
  });
});

describe("failures in words", () => {
  it("a refused microphone says so and asks nothing of the server", async () => {
    const fetchMock = installFetch();
    installMicrophone("denied");
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(/Microphone access was refused/);
    expect(status()).toHaveTextContent("Something went wrong");
    expect(fetchMock).not.toHaveBeenCalled();
    expect(startSession).not.toHaveBeenCalled();
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });

  it("no microphone at all is its own message", async () => {
    installFetch();
    installMicrophone("missing");
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(/No microphone was found/);
  });

  it("shows the server's error message when the session cannot be made", async () => {
    installFetch(async () =>
      jsonResponse({ error: { message: "ElevenLabs rejected the API key.", type: "upstream_error" } }, 502));
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("ElevenLabs rejected the API key.");
    expect(startSession).not.toHaveBeenCalled();
  });

  it("a server without an agent explains why voice does not work", async () => {
    installFetch(async () => jsonResponse({ ...SESSION, signed_url: undefined,
      warning: "No ElevenLabs agent is configured on this server: uploads and chat work, voice does not." }));
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(/No ElevenLabs agent is configured/);
  });

  it("an error reported mid-conversation is shown while the conversation goes on", async () => {
    await startConnected();
    act(() => started[0].serverError("transcription hiccup"));
    expect(screen.getByRole("alert")).toHaveTextContent("Server error: transcription hiccup");
    expect(status()).toHaveTextContent("Listening");
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(started[0].endSession).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("a dropped connection shows the reason", async () => {
    await startConnected();
    act(() => started[0].dropWithError("Connection closed unexpectedly"));
    expect(screen.getByRole("alert")).toHaveTextContent("The voice connection was lost: Connection closed unexpectedly");
    expect(status()).toHaveTextContent("Something went wrong");
  });
});

describe("transcript", () => {
  it("shows user and agent turns as they arrive", async () => {
    await startConnected();
    act(() => started[0].say("user", "What is in this picture?"));
    act(() => started[0].say("agent", "A red bicycle."));
    const turns = screen.getAllByRole("listitem").filter((item) => item.dataset.role);
    expect(turns.map((turn) => [turn.dataset.role, turn.textContent])).toEqual([
      ["user", "YouWhat is in this picture?"],
      ["agent", "AgentA red bicycle."],
    ]);
  });

  it("keeps what the agent actually said when it was interrupted", async () => {
    await startConnected();
    act(() => started[0].say("agent", "It is a red bicycle with a basket and a bell."));
    act(() => started[0].correct("It is a red bicycle with a basket and a bell.", "It is a red bicycle..."));
    expect(screen.getByText("It is a red bicycle...")).toBeInTheDocument();
    expect(screen.queryByText(/basket/)).not.toBeInTheDocument();
  });
});
