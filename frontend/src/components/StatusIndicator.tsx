import type { VoiceStatus } from "../lib/useVoiceSession";

export const STATUS_LABELS: Record<VoiceStatus, string> = {
  idle: "Not connected",
  connecting: "Connecting…",
  listening: "Listening",
  thinking: "Thinking",
  speaking: "Speaking",
  muted: "Muted",
  reconnecting: "Reconnecting…",
  lost: "Connection lost",
  error: "Something went wrong",
};

export function StatusIndicator({ status }: { status: VoiceStatus }) {
  return (
    <p className={`status status-${status}`} role="status" aria-live="polite" data-status={status}>
      <span className="status-light" aria-hidden="true" />
      {STATUS_LABELS[status]}
    </p>
  );
}
