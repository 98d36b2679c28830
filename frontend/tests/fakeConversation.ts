// Stands in for @elevenlabs/client's network side only: the real ConversationProvider, hooks and
// page run on top, and a test drives what the voice service would do through these objects.
import { vi } from "vitest";

type Options = Record<string, ((...args: any[]) => void) | unknown>;

export class FakeConversation {
  ended = 0;
  readonly id = `conv_${Math.random().toString(36).slice(2)}`;
  constructor(readonly options: Options) {}

  private call(name: string, ...args: unknown[]) {
    const callback = this.options[name];
    if (typeof callback === "function") callback(...args);
  }

  connect() {
    this.call("onStatusChange", { status: "connected" });
    this.call("onConnect", { conversationId: this.id });
    this.call("onModeChange", { mode: "listening" });
  }
  say(role: "user" | "agent", message: string) {
    this.call("onMessage", { role, source: role === "user" ? "user" : "ai", message, event_id: 1 });
  }
  correct(original: string, corrected: string) {
    this.call("onAgentResponseCorrection", { original_agent_response: original, corrected_agent_response: corrected,
                                             event_id: 2 });
  }
  mode(mode: "speaking" | "listening") {
    this.call("onModeChange", { mode });
  }
  serverError(message: string) {
    this.call("onError", `Server error: ${message}`, { errorType: "internal" });
  }
  dropWithError(message: string) {
    this.call("onStatusChange", { status: "disconnected" });
    this.call("onDisconnect", { reason: "error", message, context: new Event("error") });
  }

  endSession = vi.fn(async () => {
    this.ended += 1;
    this.call("onStatusChange", { status: "disconnecting" });
    this.call("onStatusChange", { status: "disconnected" });
    this.call("onDisconnect", { reason: "user" });
  });
  setMicMuted = vi.fn();
  setVolume = vi.fn();
  getId = () => this.id;
  getInputVolume = () => 0;
  getOutputVolume = () => 0;
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
