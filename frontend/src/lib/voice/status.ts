// What the page says the voice conversation is doing (the status line, the stage, the controls): derived, never
// stored, from the session's phase and what the SDK reports. Pure.
import type { Phase } from "./phase";

export type VoiceStatus =
  | "idle" | "connecting" | "listening" | "thinking" | "speaking" | "muted" | "reconnecting" | "lost" | "error";

/** A conversation that is on: the person can talk and share pictures. */
export function isLive(status: VoiceStatus): boolean {
  return status === "listening" || status === "thinking" || status === "speaking" || status === "muted";
}

export interface StatusInputs {
  phase: Phase;
  /** The SDK's own status ("connecting", "connected", …). */
  sdkStatus: string;
  /** The agent's voice is playing. */
  isSpeaking: boolean;
  isMuted: boolean;
  /** The person's turn ended (their words arrived, or the page spoke for them) and the agent has not answered. */
  awaitingAgent: boolean;
}

/** What the page says it is doing. Speaking beats thinking beats muted beats listening. */
export function deriveStatus({ phase, sdkStatus, isSpeaking, isMuted, awaitingAgent }: StatusInputs): VoiceStatus {
  if (phase !== "connected") return phase;
  // The SDK's own status turns "error" on any reported error, even one the conversation survives.
  if (sdkStatus === "connecting") return "connecting";
  if (isSpeaking) return "speaking";
  if (awaitingAgent) return "thinking";
  if (isMuted) return "muted";
  return "listening";
}
