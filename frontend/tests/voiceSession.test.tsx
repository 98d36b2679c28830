import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { App } from "../src/App";
import { VOICE_AVAILABLE_KEY } from "../src/lib/settings";
import { ANSWER_TIMEOUT_MS, RECONNECT_TIMEOUT_MS } from "../src/lib/useVoiceSession";
import { LIVENESS_MS } from "../src/lib/voice/heartbeat";
import {
  deferred, installApi, installFetch, installMicrophone, installXhr, jsonResponse, SESSION, uploaded,
} from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";
import { renderPage, status, turns } from "./page";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));


const VENDORS = /eleven|openai|gemini|livekit|server error|_/i;

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
  localStorage.clear();
  localStorage.setItem(VOICE_AVAILABLE_KEY, "true"); // this server had voice last time: Start is there at once
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

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
    expect(status()).toHaveAttribute("data-status", "listening");
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

  it("End conversation ends the session and returns to idle; Start opens a new one with a fresh transcript", async () => {
    await startConnected();
    act(() => started[0].say("agent", "Hello."));
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(started[0].endSession).toHaveBeenCalledTimes(1);
    expect(status()).toHaveTextContent("Not connected");
    expect(turns()).toEqual([["agent", "Hello."]]); // still there to read after the call
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(2));
    expect(turns()).toEqual([]);
  });
});

describe("what the page is doing", () => {
  it("listening, thinking once the person's turn ends, speaking, listening again", async () => {
    await startConnected();
    expect(status()).toHaveTextContent("Listening");
    act(() => started[0].say("user", "What is this?"));
    expect(status()).toHaveTextContent("Thinking");
    expect(status()).toHaveAttribute("data-status", "thinking");
    act(() => started[0].say("agent", "A bicycle."));
    expect(status()).toHaveTextContent("Listening"); // the words are in; the voice is about to start
    act(() => started[0].mode("speaking"));
    expect(status()).toHaveTextContent("Speaking");
    expect(status()).toHaveAttribute("data-status", "speaking");
    act(() => started[0].mode("listening"));
    expect(status()).toHaveTextContent("Listening");
  });

  it("thinking ends with the agent's voice even before its words", async () => {
    await startConnected();
    act(() => started[0].say("user", "Hello?"));
    act(() => started[0].mode("speaking"));
    expect(status()).toHaveTextContent("Speaking");
    act(() => started[0].mode("listening"));
    expect(status()).toHaveTextContent("Listening");
  });

  it("muted says muted, not listening, and the agent speaking still shows", async () => {
    await startConnected();
    const mute = screen.getByRole("button", { name: "Mute microphone" });
    expect(mute).toHaveAttribute("aria-pressed", "false");
    await userEvent.click(mute);
    expect(started[0].setMicMuted).toHaveBeenLastCalledWith(true);
    expect(mute).toHaveAttribute("aria-pressed", "true");
    expect(status()).toHaveTextContent("Muted");
    expect(status()).toHaveAttribute("data-status", "muted");
    act(() => started[0].mode("speaking"));
    expect(status()).toHaveTextContent("Speaking");
    act(() => started[0].mode("listening"));
    await userEvent.click(mute);
    expect(started[0].setMicMuted).toHaveBeenLastCalledWith(false);
    expect(status()).toHaveTextContent("Listening");
  });

  it("shows what the person is saying before the service settles on it", async () => {
    await startConnected();
    const stage = screen.getByRole("region", { name: "Agent" });
    act(() => started[0].tentative("what is in"));
    expect(within(stage).getByText("what is in")).toBeInTheDocument();
    act(() => started[0].tentative("what is in this picture"));
    expect(within(stage).getByText("what is in this picture")).toBeInTheDocument();
    act(() => started[0].say("user", "What is in this picture?"));
    expect(within(stage).queryByText("what is in this picture")).not.toBeInTheDocument();
    expect(turns()).toEqual([["user", "What is in this picture?"]]);
  });

  it("before a conversation, says what the agent does and where voice and pictures go", () => {
    installFetch();
    renderPage();
    const stage = screen.getByRole("region", { name: "Agent" });
    expect(stage).toHaveTextContent("Talk with an agent that can see");
    expect(stage).toHaveTextContent("Your voice and the pictures you share go to ElevenLabs and to the AI model provider");
  });
});

/** A conversation started and connected, then the clock faked (the start itself runs on real timers). */
async function connectedOnFakeTimers() {
  installFetch();
  renderPage();
  await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
  await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
  vi.useFakeTimers();
  act(() => started[0].connect());
}

describe("a connection that dies without a word", () => {
  /** Live, with the server having pinged twice (the watchdog is armed), on fake timers. */
  async function liveWithPings() {
    const api = installApi({ sessions: [SESSION, { ...SESSION, session_id: "sess_second", upload_token: "tok_2" }] });
    const uploads = installXhr();
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    vi.useFakeTimers({ shouldAdvanceTime: false });
    act(() => started[0].connect());
    act(() => started[0].ping());
    await act(async () => vi.advanceTimersByTimeAsync(2_000));
    act(() => started[0].ping());
    return { api, uploads };
  }

  it("is found within the bound and reconnected, keeping the transcript and the pictures", async () => {
    const { uploads } = await liveWithPings();
    act(() => started[0].say("user", "Look at this."));
    act(() => started[0].say("agent", "Nice bike."));
    const file = new File([new Uint8Array([1, 2])], "bike.jpg", { type: "image/jpeg" });
    act(() => {
      const input = screen.getByLabelText("Choose pictures") as HTMLInputElement;
      Object.defineProperty(input, "files", { value: [file], configurable: true });
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    await act(async () => vi.advanceTimersByTimeAsync(10));
    act(() => uploaded(uploads[0], "img1"));
    await act(async () => vi.advanceTimersByTimeAsync(10));

    // the server keeps pinging: all is well
    for (let second = 0; second < 10; second++) {
      await act(async () => vi.advanceTimersByTimeAsync(1_000));
      if (second % 2 === 0) act(() => started[0].ping());
    }
    expect(status()).toHaveTextContent(/Listening|Thinking/);
    expect(startSession).toHaveBeenCalledTimes(1);
    const said = turns();
    expect(said).toEqual([["user", "Look at this."], ["agent", "Nice bike."], ["user", "I'm showing you a picture."]]);

    // then silence (a black-holed socket): within the bound, the page says so and opens a new conversation
    await act(async () => vi.advanceTimersByTimeAsync(LIVENESS_MS + 1_500));
    expect(status()).toHaveTextContent("Reconnecting…");
    expect(status()).toHaveAttribute("data-status", "reconnecting");
    expect(started[0].endSession).toHaveBeenCalled();
    await act(async () => vi.advanceTimersByTimeAsync(10));
    expect(startSession).toHaveBeenCalledTimes(2);
    expect(startSession.mock.calls[1][0].customLlmExtraBody).toMatchObject({ session_id: "sess_second" });
    expect(turns()).toEqual(said);
    act(() => started[1].connect());
    expect(status()).toHaveTextContent("Listening");
    expect(turns()).toEqual(said);
    await act(async () => vi.advanceTimersByTimeAsync(10));
    expect(uploads).toHaveLength(2);
    expect(uploads[1].form.get("session_id")).toBe("sess_second");
    expect(uploads[1].headers["X-Upload-Token"]).toBe("tok_2");
  });

  it("a reconnect that does not get through says the connection is lost, and Try again keeps the transcript", async () => {
    await liveWithPings();
    act(() => started[0].say("agent", "Hello."));
    await act(async () => vi.advanceTimersByTimeAsync(LIVENESS_MS + 1_500));
    expect(status()).toHaveTextContent("Reconnecting…");
    await act(async () => vi.advanceTimersByTimeAsync(10));
    expect(startSession).toHaveBeenCalledTimes(2); // started, but never connects
    await act(async () => vi.advanceTimersByTimeAsync(RECONNECT_TIMEOUT_MS));
    expect(status()).toHaveTextContent("Connection lost");
    expect(status()).toHaveAttribute("data-status", "lost");
    expect(screen.getByRole("alert")).toHaveTextContent("The connection was lost.");
    expect(turns()).toEqual([["agent", "Hello."]]);
    vi.useRealTimers();
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(3));
    act(() => started[2].connect());
    expect(status()).toHaveTextContent("Listening");
    expect(turns()).toEqual([["agent", "Hello."]]);
  });

  it("a server that has not shown it pings is not judged by its silence", async () => {
    await connectedOnFakeTimers();
    act(() => started[0].ping());
    await act(async () => vi.advanceTimersByTimeAsync(LIVENESS_MS * 4));
    expect(status()).toHaveTextContent("Listening");
    expect(startSession).toHaveBeenCalledTimes(1);
  });

  it("going offline is a lost connection at once", async () => {
    await liveWithPings();
    act(() => {
      window.dispatchEvent(new Event("offline"));
    });
    expect(status()).toHaveTextContent("Reconnecting…");
  });
});

describe("a start that never connects", () => {
  it("gives up with a sentence instead of 'Connecting…' for ever (the SDK's start has no deadline)", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    installFetch();
    renderPage();
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    await user.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    expect(status()).toHaveTextContent("Connecting…");
    await act(async () => vi.advanceTimersByTimeAsync(RECONNECT_TIMEOUT_MS));
    expect(screen.getByRole("alert")).toHaveTextContent("Could not start the conversation");
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });
});

describe("leaving mid-call", () => {
  function leave() {
    const event = new Event("beforeunload", { cancelable: true });
    window.dispatchEvent(event);
    return event.defaultPrevented;
  }

  it("asks before a reload or close only while a conversation is live", async () => {
    installFetch();
    renderPage();
    expect(leave()).toBe(false);
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    expect(leave()).toBe(true);
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(leave()).toBe(false);
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
    expect(screen.getByRole("button", { name: "Mute microphone" })).toHaveAttribute("aria-pressed", "true");
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

  it("a session the server cannot make is explained without naming the vendor", async () => {
    installFetch(async () =>
      jsonResponse({ error: { message: "ElevenLabs rejected the API key.", type: "upstream_error" } }, 502));
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The voice service did not answer. Try again in a moment.");
    expect(alert.textContent).not.toMatch(VENDORS);
    expect(startSession).not.toHaveBeenCalled();
  });

  it("the proxy's own plain message is shown as it is", async () => {
    installFetch(async () => jsonResponse({ error: { message: "Too many sessions from this address; wait a minute.",
                                                     type: "rate_limited" } }, 429));
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Too many sessions from this address; wait a minute.");
  });

  it("a server without an agent explains why voice does not work, in plain words", async () => {
    installFetch(async () => jsonResponse({ ...SESSION, signed_url: undefined,
      warning: "No ElevenLabs agent is configured on this server: uploads and chat work, voice does not." }));
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Voice is not set up on this server yet");
    expect(alert.textContent).not.toMatch(VENDORS);
  });

  it("an error reported mid-conversation is shown in plain words while the conversation goes on", async () => {
    await startConnected();
    act(() => started[0].serverError("transcription hiccup"));
    expect(screen.getByRole("alert")).toHaveTextContent("Something went wrong on the voice line, but the conversation goes on.");
    expect(status()).toHaveTextContent("Listening");
    await userEvent.click(screen.getByRole("button", { name: "End conversation" }));
    expect(started[0].endSession).toHaveBeenCalledTimes(1);
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("an error while the agent should be answering: the agent didn't answer", async () => {
    await startConnected();
    act(() => started[0].say("user", "What is this?"));
    act(() => started[0].serverError("custom_llm generation failed"));
    expect(screen.getByRole("alert")).toHaveTextContent("The agent didn't answer — try again.");
    expect(status()).toHaveTextContent("Listening");
    act(() => started[0].say("agent", "Sorry, a bicycle."));
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("a conversation the service closes after the person's turn: the agent didn't answer, Try again", async () => {
    await startConnected();
    act(() => started[0].say("user", "What is this?"));
    act(() => started[0].dropWithError("custom_llm generation failed"));
    expect(screen.getByRole("alert")).toHaveTextContent("The agent didn't answer — try again.");
    expect(status()).toHaveTextContent("Something went wrong");
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });

  it("a dropped connection is explained without the service's own words, and Try again keeps the transcript", async () => {
    await startConnected();
    act(() => started[0].say("agent", "Hi! Show me something."));
    act(() => started[0].dropWithError("Connection closed unexpectedly: ws error 1006"));
    const alert = screen.getByRole("alert");
    expect(alert).toHaveTextContent("The voice connection was lost. Press Try again to reconnect.");
    expect(status()).toHaveTextContent("Something went wrong");
    await userEvent.click(screen.getByRole("button", { name: "Try again" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(2));
    act(() => started[1].connect());
    expect(turns()).toEqual([["agent", "Hi! Show me something."]]);
  });

  it("an answer that never comes is not left as silence", async () => {
    await connectedOnFakeTimers();
    act(() => started[0].say("user", "Hello?"));
    expect(status()).toHaveTextContent("Thinking");
    await act(async () => vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS + 100));
    expect(screen.getByRole("alert")).toHaveTextContent("The agent didn't answer — try again.");
    expect(status()).toHaveTextContent("Listening");
  });

  it("the agent hanging up says so", async () => {
    await startConnected();
    act(() => started[0].agentHangsUp());
    expect(status()).toHaveTextContent("Not connected");
    expect(screen.getByRole("alert")).toHaveTextContent("The agent ended the conversation.");
  });
});

describe("transcript", () => {
  it("shows user and agent turns as they arrive", async () => {
    await startConnected();
    act(() => started[0].say("user", "What is in this picture?"));
    act(() => started[0].say("agent", "A red bicycle."));
    expect(turns()).toEqual([["user", "What is in this picture?"], ["agent", "A red bicycle."]]);
  });

  it("keeps what the agent actually said when it was interrupted", async () => {
    await startConnected();
    act(() => started[0].say("agent", "It is a red bicycle with a basket and a bell."));
    act(() => started[0].correct("It is a red bicycle with a basket and a bell.", "It is a red bicycle..."));
    expect(screen.getByText("It is a red bicycle...")).toBeInTheDocument();
    expect(screen.queryByText(/basket/)).not.toBeInTheDocument();
  });

  it("scrolls only its own box, and only when the person is already at the bottom", async () => {
    const scrollIntoView = vi.fn();
    Element.prototype.scrollIntoView = scrollIntoView;
    await startConnected();
    const box = screen.getByTestId("transcript");
    let scrollTop = 0;
    let scrollHeight = 400;
    Object.defineProperty(box, "clientHeight", { configurable: true, get: () => 200 });
    Object.defineProperty(box, "scrollHeight", { configurable: true, get: () => scrollHeight });
    Object.defineProperty(box, "scrollTop", { configurable: true, get: () => scrollTop,
                                              set: (value: number) => { scrollTop = value; } });
    act(() => started[0].say("agent", "One."));
    expect(scrollTop).toBe(400); // was at the bottom: follows
    scrollTop = 100; // the person scrolls up to read
    act(() => {
      box.dispatchEvent(new Event("scroll"));
    });
    scrollHeight = 600;
    act(() => started[0].say("agent", "Two."));
    expect(scrollTop).toBe(100); // left where they are reading
    scrollTop = 400; // back at the bottom
    act(() => {
      box.dispatchEvent(new Event("scroll"));
    });
    scrollHeight = 800;
    act(() => started[0].say("agent", "Three."));
    expect(scrollTop).toBe(800);
    expect(scrollIntoView).not.toHaveBeenCalled(); // the page itself never moves
  });
});
