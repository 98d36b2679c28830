// The typed conversation: a server without voice (no ElevenLabs agent) opens with a text box, and each message is a
// streamed turn of the proxy's own chat endpoint carrying the page's session; with voice, Type instead offers the same
// box, and during a call typed words go through the call.
import { act, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { DEMO_NOTE } from "../src/components/VoicePage";
import { SYSTEM_PROMPT } from "../src/lib/chat";
import { ANSWER_TIMEOUT_MS } from "../src/lib/useVoiceSession";
import { VOICE_AVAILABLE_KEY } from "../src/lib/settings";
import { installFetch, installMicrophone, installXhr, jsonResponse, SESSION, type SentUpload, uploaded } from "./browserFakes";
import { resetConversations, started, startSession } from "./fakeConversation";
import { renderPage, status, turns } from "./page";

vi.mock("@elevenlabs/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("@elevenlabs/client")>()),
  Conversation: { startSession: (options: Record<string, unknown>) => startSession(options) },
}));

/** What GET /v1/session says on a fresh clone: no agent, no LLM. */
const NO_VOICE = {
  ...SESSION, agent_id: null, signed_url: undefined, demo_model: true,
  warning: "No ElevenLabs agent is configured on this server: uploads and chat work, voice does not.",
};

/** The answer to one chat turn, written by the test as it goes. */
class AnswerStream {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly response = new Response(new ReadableStream<Uint8Array>({ start: (c) => { this.controller = c; } }),
                                   { status: 200, headers: { "Content-Type": "text/event-stream" } });

  raw(text: string) {
    this.controller.enqueue(new TextEncoder().encode(text));
  }
  delta(content: string) {
    this.raw(`data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk",
                                       choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`);
  }
  done() {
    this.raw("data: [DONE]\n\n");
    this.controller.close();
  }
  fail(message: string) {
    this.raw(`data: ${JSON.stringify({ error: { message, type: "server_error", code: "stream_interrupted" } })}\n\n`);
    this.done();
  }
}

interface ChatCall {
  body: {
    model: string; stream: boolean; messages: { role: string; content: string }[];
    elevenlabs_extra_body: Record<string, string>;
  };
  headers: Record<string, string>;
  signal: AbortSignal;
  answer: AnswerStream;
  /** When the request was made, among every fetch and upload answer (see `order`). */
  at: number;
}

let order = 0;

/** The proxy: /v1/session answers `session`; /v1/chat/completions streams what the test writes, or `refuse`. */
function installServer({ session = NO_VOICE as Record<string, unknown>, refuse }: {
  session?: Record<string, unknown>;
  refuse?: () => Response;
} = {}) {
  const sessions: string[] = [];
  const chats: ChatCall[] = [];
  const fetchMock = installFetch(async (url, init) => {
    if (url.startsWith("/v1/session")) {
      sessions.push(url);
      return jsonResponse(session);
    }
    if (url === "/v1/chat/completions" && init?.method === "POST") {
      if (refuse) return refuse();
      const answer = new AnswerStream();
      chats.push({ body: JSON.parse(String(init.body)), headers: Object.fromEntries(new Headers(init.headers)),
                   signal: init.signal!, answer, at: order++ });
      return answer.response;
    }
    return jsonResponse({ error: { message: "Not found." } }, 404);
  });
  return { sessions, chats, fetchMock };
}


const box = () => screen.getByRole("textbox", { name: "Message" });
const agentTurns = () => screen.queryAllByRole("listitem").filter((item) => item.dataset.role === "agent");
const VENDORS = /eleven|openai|gemini|gpt|upstream|llm|_/i;

function photo(name = "bike.jpg") {
  return new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3])], name, { type: "image/jpeg" });
}

async function ask(text: string) {
  await userEvent.type(box(), `${text}{Enter}`);
}

beforeEach(() => {
  order = 0;
  resetConversations();
  installMicrophone("granted");
  localStorage.clear();
  let next = 0;
  vi.stubGlobal("URL", Object.assign(URL, { createObjectURL: vi.fn(() => `blob:p${next++}`), revokeObjectURL: vi.fn() }));
});
afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

describe("a server without voice", () => {
  it("opens with a text box, never a Start conversation that would fail, and asks for one session", async () => {
    const { sessions } = installServer();
    renderPage();
    expect(box()).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Send" })).toBeInTheDocument();
    expect(screen.getByRole("form", { name: "Type to the agent" })).toContainElement(box());
    expect(status()).toHaveTextContent("Ready to type");
    expect(status()).toHaveAttribute("data-status", "ready");
    // asked without minting a voice link: a page load never spends the ElevenLabs key
    await waitFor(() => expect(sessions).toEqual(["/v1/session?transport=websocket&voice=false"]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sessions).toHaveLength(1); // StrictMode's rehearsal mount asks nothing
    expect(screen.queryByRole("button", { name: /Start conversation|Try again/ })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Type instead" })).not.toBeInTheDocument();
    const stage = screen.getByRole("region", { name: "Agent" });
    expect(stage).toHaveTextContent("Chat with an agent that can see");
    expect(stage).not.toHaveTextContent("ElevenLabs");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    expect(localStorage.getItem(VOICE_AVAILABLE_KEY)).toBeNull();
  });

  it("says it is the demo model only when the session says so", async () => {
    installServer();
    const page = renderPage();
    expect(await screen.findByText(DEMO_NOTE)).toBeInTheDocument();
    expect(screen.getByRole("region", { name: "Agent" })).toHaveTextContent("stay on this server");
    page.unmount();

    installServer({ session: { ...NO_VOICE, demo_model: false } });
    renderPage();
    await waitFor(() => expect(screen.getByRole("region", { name: "Agent" }))
      .toHaveTextContent("go to the AI model provider"));
    expect(screen.queryByText(/Demo mode/)).not.toBeInTheDocument();
  });
});

describe("a typed turn", () => {
  it("sends the history with the session in elevenlabs_extra_body and streams the answer into one entry", async () => {
    const { chats } = installServer();
    renderPage();
    await ask("What is this?");
    expect(turns()).toEqual([["user", "What is this?"]]);
    expect(box()).toHaveValue("");
    expect(status()).toHaveTextContent("Thinking");
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(chats[0].body).toEqual({
      model: "glimpse-demo",
      stream: true,
      messages: [{ role: "system", content: SYSTEM_PROMPT }, { role: "user", content: "What is this?" }],
      elevenlabs_extra_body: { session_id: SESSION.session_id, session_key: SESSION.session_key },
    });
    expect(chats[0].headers["content-type"]).toBe("application/json");

    act(() => chats[0].answer.delta("A red "));
    await waitFor(() => expect(turns()).toEqual([["user", "What is this?"], ["agent", "A red "]]));
    expect(status()).toHaveTextContent("Answering");
    expect(status()).toHaveAttribute("data-status", "answering");
    expect(agentTurns()[0]).toHaveAttribute("aria-busy", "true");
    act(() => chats[0].answer.delta("bicycle."));
    await waitFor(() => expect(turns()).toEqual([["user", "What is this?"], ["agent", "A red bicycle."]]));
    act(() => chats[0].answer.done());
    await waitFor(() => expect(status()).toHaveTextContent("Ready to type"));
    expect(agentTurns()).toHaveLength(1);
    expect(agentTurns()[0]).not.toHaveAttribute("aria-busy");

    await ask("And the bell?");
    await waitFor(() => expect(chats).toHaveLength(2));
    expect(chats[1].body.messages).toEqual([
      { role: "system", content: SYSTEM_PROMPT },
      { role: "user", content: "What is this?" },
      { role: "assistant", content: "A red bicycle." },
      { role: "user", content: "And the bell?" },
    ]);
    expect(chats[1].body.elevenlabs_extra_body).toEqual({ session_id: SESSION.session_id,
                                                           session_key: SESSION.session_key });
  });

  it("an error event in the stream becomes plain words, and what had come stays", async () => {
    const { chats } = installServer();
    renderPage();
    await ask("What is this?");
    await waitFor(() => expect(chats).toHaveLength(1));
    act(() => chats[0].answer.delta("It is a"));
    await waitFor(() => expect(agentTurns()).toHaveLength(1));
    act(() => chats[0].answer.fail("The upstream LLM stream ended unexpectedly."));
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The answer was cut short — try again.");
    expect(alert.textContent).not.toMatch(VENDORS);
    expect(turns()).toEqual([["user", "What is this?"], ["agent", "It is a"]]);
    expect(status()).toHaveTextContent("Ready to type");

    await ask("Again?");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument(); // a new message clears it
    await waitFor(() => expect(chats).toHaveLength(2));
    act(() => chats[1].answer.fail("Something broke."));
    expect(await screen.findByRole("alert")).toHaveTextContent("Something broke.");
  });

  it("an error before any words: the agent didn't answer", async () => {
    const { chats } = installServer();
    renderPage();
    await ask("Hello?");
    await waitFor(() => expect(chats).toHaveLength(1));
    act(() => chats[0].answer.fail("The upstream LLM stream ended unexpectedly."));
    expect(await screen.findByRole("alert")).toHaveTextContent("The agent didn't answer — try again.");
    expect(turns()).toEqual([["user", "Hello?"]]);
  });

  it.each([
    [502, { error: { message: "OpenAI returned 500 from gpt-4o.", type: "upstream_error" } },
     "The agent didn't answer — try again."],
    [429, { error: { message: "Too many turns for this conversation; wait a minute.", type: "rate_limited" } },
     "Too many turns for this conversation; wait a minute."],
    [401, { error: { message: "Missing or invalid bearer token for the custom LLM endpoint.", type: "x" } },
     "This server does not accept typed messages."],
    [400, { error: { message: "`messages` must be a non-empty array.", type: "invalid_request_error" } },
     "The message could not be sent. Try again, or reload the page to start over."],
  ])("an HTTP %i is said in plain words", async (code, body, words) => {
    installServer({ refuse: () => jsonResponse(body, code) });
    renderPage();
    await ask("What is this?");
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent(words);
    expect(alert.textContent).not.toMatch(VENDORS);
    expect(status()).toHaveTextContent("Ready to type");
  });

  it("a server that cannot be reached is said so", async () => {
    installFetch(async () => {
      throw new TypeError("Failed to fetch");
    });
    renderPage();
    await ask("Hello?");
    expect(await screen.findByRole("alert")).toHaveTextContent("Could not reach the Glimpse server.");
  });

  it("a new message stops the answer under way, keeping what had come", async () => {
    const { chats } = installServer();
    renderPage();
    await ask("What is this?");
    await waitFor(() => expect(chats).toHaveLength(1));
    act(() => chats[0].answer.delta("A red"));
    await waitFor(() => expect(agentTurns()).toHaveLength(1));
    await ask("Never mind, what colour is the bell?");
    expect(chats[0].signal.aborted).toBe(true);
    await waitFor(() => expect(chats).toHaveLength(2));
    expect(chats[1].body.messages.slice(1)).toEqual([
      { role: "user", content: "What is this?" },
      { role: "assistant", content: "A red" },
      { role: "user", content: "Never mind, what colour is the bell?" },
    ]);
    expect(agentTurns()[0]).not.toHaveAttribute("aria-busy");
    act(() => chats[1].answer.delta("Silver."));
    act(() => chats[1].answer.done());
    await waitFor(() => expect(status()).toHaveTextContent("Ready to type"));
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("leaving the page stops the answer", async () => {
    const { chats } = installServer();
    const page = renderPage();
    await ask("What is this?");
    await waitFor(() => expect(chats).toHaveLength(1));
    act(() => chats[0].answer.delta("A"));
    page.unmount();
    expect(chats[0].signal.aborted).toBe(true);
  });
});

describe("an answer that never comes", () => {
  it("is not left thinking: the turn stops and the page says so", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const { chats } = installServer();
    renderPage();
    await ask("Hello?");
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(status()).toHaveTextContent("Thinking");
    await act(async () => vi.advanceTimersByTimeAsync(ANSWER_TIMEOUT_MS + 100));
    expect(chats[0].signal.aborted).toBe(true);
    expect(screen.getByRole("alert")).toHaveTextContent("The agent didn't answer — try again.");
    expect(status()).toHaveTextContent("Ready to type");
  });
});

describe("the keyboard", () => {
  it("Enter sends, Shift+Enter starts a new line", async () => {
    const { chats } = installServer();
    renderPage();
    await userEvent.type(box(), "line one{Shift>}{Enter}{/Shift}line two");
    expect(box()).toHaveValue("line one\nline two");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(chats).toHaveLength(0);
    await userEvent.keyboard("{Enter}");
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(chats[0].body.messages.at(-1)).toEqual({ role: "user", content: "line one\nline two" });
    expect(box()).toHaveValue("");
  });

  it("an empty box sends nothing; the Send button sends", async () => {
    const { chats } = installServer();
    renderPage();
    await userEvent.type(box(), "   {Enter}");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(chats).toHaveLength(0);
    expect(turns()).toEqual([]);
    await userEvent.type(box(), "Hi");
    await userEvent.click(screen.getByRole("button", { name: "Send" }));
    await waitFor(() => expect(chats).toHaveLength(1));
  });
});

describe("pictures in a typed conversation", () => {
  let uploads: SentUpload[];
  const picker = () => screen.getByLabelText("Choose pictures") as HTMLInputElement;
  const tiles = () => within(screen.getByRole("list", { name: "Shared pictures" })).getAllByRole("listitem");
  async function answerUpload(index: number) {
    await waitFor(() => expect(uploads.length).toBeGreaterThan(index));
    await act(async () => {
      order++;
      uploaded(uploads[index], `img${index}`);
    });
  }

  beforeEach(() => {
    uploads = installXhr();
  });

  it("a question asked while a picture uploads is sent once the upload is in, and carries it", async () => {
    const { chats } = installServer();
    renderPage();
    await userEvent.upload(picker(), photo());
    await waitFor(() => expect(uploads).toHaveLength(1));
    expect(uploads[0].headers["X-Upload-Token"]).toBe(SESSION.upload_token);
    expect(uploads[0].form.get("session_id")).toBe(SESSION.session_id);

    await ask("What is this?");
    expect(status()).toHaveTextContent("Thinking");
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(chats).toHaveLength(0); // the picture is not in yet
    const uploadedAt = order;
    await answerUpload(0);
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(chats[0].at).toBeGreaterThan(uploadedAt);
    expect(chats[0].body.messages.at(-1)).toEqual({ role: "user", content: "What is this?" });

    act(() => chats[0].answer.delta("A bicycle."));
    act(() => chats[0].answer.done());
    await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-seen", "true"));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(chats).toHaveLength(1); // the question carried the picture: nothing is said for it
    expect(turns()).toEqual([["user", "What is this?"], ["agent", "A bicycle."]]);
  });

  it("reacts to a batch of pictures with one message, at once", async () => {
    const { chats } = installServer();
    renderPage();
    expect(screen.getByRole("checkbox", { name: "React to pictures" })).toBeChecked();
    await userEvent.upload(picker(), [photo("one.jpg"), photo("two.jpg")]);
    await answerUpload(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(chats).toHaveLength(0); // the second is still on its way
    await answerUpload(1);
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(chats[0].body.messages.at(-1)).toEqual({ role: "user", content: "I'm showing you 2 pictures." });
    expect(turns()).toEqual([["user", "I'm showing you 2 pictures."]]);
    act(() => chats[0].answer.delta("Two bicycles."));
    act(() => chats[0].answer.done());
    await waitFor(() => expect(tiles().map((tile) => tile.dataset.seen)).toEqual(["true", "true"]));
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(chats).toHaveLength(1);
  });

  it("Type instead closed and opened again: pictures in the typed conversation stay there, none sent twice",
    async () => {
      localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
      const { sessions } = installServer({ session: SESSION });
      renderPage();
      await userEvent.upload(picker(), photo());
      expect(tiles()[0]).toHaveAttribute("data-state", "waiting"); // voice first: for the call
      const toggle = screen.getByRole("button", { name: "Type instead" });
      await userEvent.click(toggle);
      await answerUpload(0); // typing: a session now, and the picture goes to it
      expect(sessions).toHaveLength(1);
      await waitFor(() => expect(tiles()[0]).toHaveAttribute("data-state", "uploaded"));
      await userEvent.click(toggle);
      expect(tiles()[0]).toHaveAttribute("data-state", "waiting");
      await userEvent.click(toggle);
      expect(tiles()[0]).toHaveAttribute("data-state", "uploaded");
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(uploads).toHaveLength(1);
      expect(sessions).toHaveLength(1);
    });

  it("with React to pictures off, a picture waits for the next message", async () => {
    const { chats } = installServer();
    renderPage();
    await userEvent.click(screen.getByRole("checkbox", { name: "React to pictures" }));
    expect(screen.getByText("Share a picture: the agent sees it from your next message on.")).toBeInTheDocument();
    await userEvent.upload(picker(), photo());
    await answerUpload(0);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(chats).toHaveLength(0);
    await ask("And this?");
    await waitFor(() => expect(chats).toHaveLength(1));
    expect(chats[0].body.messages.at(-1)).toEqual({ role: "user", content: "And this?" });
  });
});

describe("a server with voice", () => {
  it("a first visit asks, then offers Start conversation and Type instead, and remembers", async () => {
    const { sessions } = installServer({ session: SESSION });
    const page = renderPage();
    expect(await screen.findByRole("button", { name: "Start conversation" })).toBeInTheDocument();
    expect(screen.queryByRole("textbox", { name: "Message" })).not.toBeInTheDocument();
    expect(status()).toHaveTextContent("Not connected");
    expect(screen.getByRole("region", { name: "Agent" })).toHaveTextContent("Talk with an agent that can see");
    expect(localStorage.getItem(VOICE_AVAILABLE_KEY)).toBe("true");
    page.unmount();

    renderPage();
    expect(screen.getByRole("button", { name: "Start conversation" })).toBeInTheDocument();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sessions).toHaveLength(1); // known now: the next visit spends no session on asking
  });

  it("Type instead before a call: the box opens focused, and messages go to the proxy with a session of their own",
    async () => {
      localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
      const { sessions, chats } = installServer({ session: SESSION });
      renderPage();
      const toggle = screen.getByRole("button", { name: "Type instead" });
      expect(toggle).toHaveAttribute("aria-pressed", "false");
      await userEvent.click(toggle);
      expect(toggle).toHaveAttribute("aria-pressed", "true");
      expect(box()).toHaveFocus();
      expect(status()).toHaveTextContent("Ready to type");
      expect(sessions).toHaveLength(0); // fetched when the first message or picture needs it
      await userEvent.keyboard("What is this?{Enter}");
      await waitFor(() => expect(chats).toHaveLength(1));
      expect(sessions).toHaveLength(1);
      expect(chats[0].body).not.toHaveProperty("model"); // the proxy names its own model
      expect(chats[0].body.elevenlabs_extra_body).toEqual({ session_id: SESSION.session_id,
                                                             session_key: SESSION.session_key });
      expect(startSession).not.toHaveBeenCalled();
      await userEvent.click(toggle);
      expect(screen.queryByRole("textbox", { name: "Message" })).not.toBeInTheDocument();
      expect(toggle).toHaveFocus();
    });

  it("typing during a call goes through the call (sendUserMessage), not to the proxy", async () => {
    localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
    const { chats, fetchMock } = installServer({ session: SESSION });
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    await waitFor(() => expect(startSession).toHaveBeenCalledTimes(1));
    act(() => started[0].connect());
    await userEvent.click(screen.getByRole("button", { name: "Type instead" }));
    await userEvent.type(box(), "What colour is it?{Enter}");
    expect(started[0].sendUserMessage).toHaveBeenCalledWith("What colour is it?");
    expect(turns()).toEqual([["user", "What colour is it?"]]);
    expect(status()).toHaveTextContent("Thinking");
    act(() => started[0].say("user", "What colour is it?")); // the service's echo is not shown twice
    act(() => started[0].say("agent", "Red."));
    expect(turns()).toEqual([["user", "What colour is it?"], ["agent", "Red."]]);
    expect(status()).toHaveTextContent("Listening");
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(chats).toHaveLength(0);
    expect(fetchMock.mock.calls.map(([url]) => url)).toEqual(["/v1/session?transport=websocket"]);
  });

  it("a server that has lost its agent since: Start explains, then the text box takes over", async () => {
    localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
    const { chats } = installServer();
    renderPage();
    await userEvent.click(screen.getByRole("button", { name: "Start conversation" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "Voice is not set up on this server yet. Type your message instead.");
    expect(screen.queryByRole("button", { name: /Start conversation|Try again/ })).not.toBeInTheDocument();
    expect(status()).toHaveTextContent("Ready to type");
    expect(localStorage.getItem(VOICE_AVAILABLE_KEY)).toBeNull();
    await ask("Hello?");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
    await waitFor(() => expect(chats).toHaveLength(1));
  });
});
