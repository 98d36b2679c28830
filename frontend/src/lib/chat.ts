// A typed turn: the proxy's own chat endpoint, asked the way ElevenLabs asks it (the page's session in
// `elevenlabs_extra_body`), so the same conversation lookup, picture injection and policies apply. The answer comes
// back as Server-Sent Events (`data: {chunk}` lines, then `data: [DONE]`) and is read as it arrives.
import { ApiError, errorBody, type GlimpseSession, SERVER_BUSY } from "./api";
import { NO_ANSWER, plainWords, UNREACHABLE } from "./plainWords";

export const CHAT_URL = "/v1/chat/completions";
/** The model named on a typed turn when the server says it answers with its built-in demo model. */
export const DEMO_MODEL = "glimpse-demo";

export const SYSTEM_PROMPT = "You are Glimpse, an assistant that can see the pictures the person shares in this "
  + "conversation. Answer in a few plain sentences.";

export const CUT_SHORT = "The answer was cut short — try again.";
export const TYPING_CLOSED = "This server does not accept typed messages.";

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

export function chatBody(session: GlimpseSession, messages: ChatMessage[]) {
  return {
    // With a real LLM no model is named: the proxy uses its own (GLIMPSE_UPSTREAM_MODEL or the upstream's `model`).
    ...(session.demo_model ? { model: DEMO_MODEL } : {}),
    stream: true,
    messages,
    elevenlabs_extra_body: { session_id: session.session_id, session_key: session.session_key },
  };
}

/** Splits a Server-Sent Events stream into the data of each event, however the bytes are cut. */
export class SseParser {
  private buffer = "";
  private data: string[] = [];

  /** The events completed by this piece of the stream. */
  feed(text: string): string[] {
    this.buffer += text;
    const events: string[] = [];
    let end: number;
    while ((end = this.buffer.indexOf("\n")) >= 0) {
      this.line(this.buffer.slice(0, end).replace(/\r$/, ""), events);
      this.buffer = this.buffer.slice(end + 1);
    }
    return events;
  }

  /** The stream ended: whatever event was still open. */
  end(): string[] {
    const events: string[] = [];
    if (this.buffer) this.line(this.buffer.replace(/\r$/, ""), events);
    this.buffer = "";
    this.line("", events);
    return events;
  }

  private line(line: string, events: string[]) {
    if (line === "") {
      if (this.data.length) events.push(this.data.join("\n"));
      this.data = [];
    } else if (line.startsWith("data:")) {
      this.data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    }
    // comments (":") and the event, id and retry fields mean nothing here
  }
}

/** Thrown when the answer stops with an error: its message is fit to show as it is. */
export class ChatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ChatError";
  }
}

const CHAT_FALLBACKS: Record<number, string> = {
  400: "The message could not be sent. Try again, or reload the page to start over.",
  404: "The server does not know this conversation any more. Reload the page to start a new one.",
  413: "That message is too long. Try a shorter one.",
  429: "Too many messages at once. Wait a moment and try again.",
};

/** A refused turn in the person's words. The proxy's own message is used only when it is a plain sentence; a
 * server-side failure is worded here, since the proxy writes those for API clients. */
export function chatErrorFromResponse(status: number, body: string): ApiError {
  const { message } = errorBody(body);
  if (status === 401 || status === 403) return new ApiError(TYPING_CLOSED, status);
  if (status === 503) return new ApiError(SERVER_BUSY, status);
  if (status >= 500) return new ApiError(NO_ANSWER, status);
  const fallback = CHAT_FALLBACKS[status] ?? `The server refused the message (${status}).`;
  return new ApiError(plainWords(message, fallback), status);
}

interface ChatRequest {
  session: GlimpseSession;
  messages: ChatMessage[];
  signal: AbortSignal;
  /** Called with each piece of the answer, in order. */
  onDelta: (text: string) => void;
}

/** Sends one turn and reads the answer to its end. Throws ApiError (refused, unreachable), ChatError (broken off)
 * or the abort. */
export async function streamChat({ session, messages, signal, onDelta }: ChatRequest): Promise<void> {
  let response: Response;
  try {
    response = await fetch(CHAT_URL, {
      method: "POST",
      signal,
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify(chatBody(session, messages)),
    });
  } catch (error) {
    if (signal.aborted) throw error;
    throw new ApiError(UNREACHABLE, 0);
  }
  if (!response.ok) throw chatErrorFromResponse(response.status, await response.text().catch(() => ""));

  let said = false;
  const take = (data: string): boolean => {
    if (data.trim() === "[DONE]") return true;
    let event: { error?: { message?: unknown }; choices?: { delta?: { content?: unknown } }[] };
    try {
      event = JSON.parse(data);
    } catch {
      return false; // not an event this page knows; the next one may be
    }
    if (event?.error) {
      const message = typeof event.error.message === "string" ? event.error.message : undefined;
      throw new ChatError(plainWords(message, said ? CUT_SHORT : NO_ANSWER));
    }
    const delta = event?.choices?.[0]?.delta?.content;
    if (typeof delta === "string" && delta) {
      said = true;
      onDelta(delta);
    }
    return false;
  };

  if (!response.body) {
    // no stream to read (a very old browser): the whole answer at once
    for (const data of new SseParser().feed(`${await response.text()}\n\n`)) if (take(data)) return;
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  const stop = () => void reader.cancel().catch(() => undefined); // a read under way ends at once
  signal.addEventListener("abort", stop, { once: true });
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal.aborted) throw error;
        throw new ChatError(said ? CUT_SHORT : NO_ANSWER); // the connection broke mid-answer
      }
      if (signal.aborted) throw new DOMException("Aborted", "AbortError");
      const events = chunk.done ? parser.end() : parser.feed(decoder.decode(chunk.value, { stream: true }));
      for (const data of events) if (take(data)) return;
      if (chunk.done) return; // closed without [DONE]: what came is the answer
    }
  } finally {
    signal.removeEventListener("abort", stop);
    reader.cancel().catch(() => undefined);
  }
}
