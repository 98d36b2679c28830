// Stands in for @elevenlabs/client's network side only: the real ConversationProvider, hooks and
// page run on top, and a test drives what the voice service would do through these objects.
// Every server event goes through onIncomingEvent first, as BaseConversation.onMessage does.
import { vi } from "vitest";

type Options = Record<string, ((...args: any[]) => void) | unknown>;

let eventIds = 1;

export class FakeConversation {
  ended = 0;
  readonly id = `conv_${Math.random().toString(36).slice(2)}`;
  /** What the page said for the person (sendUserMessage), in order. */
  readonly userMessages: string[] = [];
  inputVolume = 0;
  outputVolume = 0;
  constructor(readonly options: Options) {}

  private call(name: string, ...args: unknown[]) {
    const callback = this.options[name];
    if (typeof callback === "function") callback(...args);
  }

  /** A raw server event, seen by onIncomingEvent (and, for the unknown ones, onDebug). */
  event(raw: { type: string } & Record<string, unknown>) {
    this.call("onIncomingEvent", raw);
  }

  connect() {
    this.call("onStatusChange", { status: "connected" });
    this.call("onConnect", { conversationId: this.id });
    this.call("onModeChange", { mode: "listening" });
  }
  say(role: "user" | "agent", message: string) {
    const event_id = eventIds++;
    if (role === "user") {
      this.event({ type: "user_transcript", user_transcription_event: { user_transcript: message, event_id } });
    } else {
      this.event({ type: "agent_response", agent_response_event: { agent_response: message, event_id } });
    }
    this.call("onMessage", { role, source: role === "user" ? "user" : "ai", message, event_id });
  }
  /** What the person is saying, before the service settles on it (the `tentative_user_transcript` event). */
  tentative(text: string) {
    const raw = { type: "tentative_user_transcript",
                  tentative_user_transcription_event: { user_transcript: text, event_id: eventIds++ } };
    this.event(raw);
    this.call("onDebug", raw);
  }
  ping() {
    const ping_event = { event_id: eventIds++, ping_ms: 20 };
    this.event({ type: "ping", ping_event });
    this.call("onPing", ping_event);
  }
  correct(original: string, corrected: string) {
    this.call("onAgentResponseCorrection", { original_agent_response: original, corrected_agent_response: corrected,
                                             event_id: 2 });
  }
  mode(mode: "speaking" | "listening") {
    this.call("onModeChange", { mode });
  }
  serverError(message: string) {
    this.event({ type: "error", error_event: { message } });
    this.call("onError", `Server error: ${message}`, { errorType: "internal" });
  }
  dropWithError(message: string) {
    this.call("onStatusChange", { status: "disconnected" });
    this.call("onDisconnect", { reason: "error", message, context: new Event("error") });
  }
  agentHangsUp() {
    this.call("onStatusChange", { status: "disconnected" });
    this.call("onDisconnect", { reason: "agent" });
  }

  endSession = vi.fn(async () => {
    this.ended += 1;
    this.call("onStatusChange", { status: "disconnecting" });
    this.call("onStatusChange", { status: "disconnected" });
    this.call("onDisconnect", { reason: "user" });
  });
  sendUserMessage = vi.fn((text: string) => {
    this.userMessages.push(text);
  });
  sendContextualUpdate = vi.fn();
  setMicMuted = vi.fn();
  setVolume = vi.fn();
  getId = () => this.id;
  getInputVolume = () => this.inputVolume;
  getOutputVolume = () => this.outputVolume;
  getInputByteFrequencyData = () => new Uint8Array(0);
  getOutputByteFrequencyData = () => new Uint8Array(0);
}

export const started: FakeConversation[] = [];

export const startSession = vi.fn(async (options: Options) => {
  const conversation = new FakeConversation(options);
  started.push(conversation);
  (options.onStatusChange as (s: unknown) => void)?.({ status: "connecting" });
  (options.onConversationCreated as (c: unknown) => void)?.(conversation);
  return conversation;
});

export function resetConversations() {
  started.length = 0;
  startSession.mockClear();
}
