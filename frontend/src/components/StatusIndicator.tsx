import type { VoiceStatus } from "../lib/voice/status";

/** What the page is doing: a voice call's states, and a typed conversation's ("ready", "thinking", "answering"). */
export type PageStatus = VoiceStatus | "ready" | "answering";

export const STATUS_LABELS: Record<PageStatus, string> = {
  idle: "Not connected",
  connecting: "Connecting…",
  listening: "Listening",
  thinking: "Thinking",
  speaking: "Speaking",
  muted: "Muted",
  reconnecting: "Reconnecting…",
  lost: "Connection lost",
  error: "Something went wrong",
  ready: "Ready to type",
  answering: "Answering",
};

export function StatusIndicator({ status }: { status: PageStatus }) {
  return (
    <p className={`status status-${status}`} role="status" aria-live="polite" data-status={status}>
      <span className="status-light" aria-hidden="true" />
      {STATUS_LABELS[status]}
    </p>
  );
}
