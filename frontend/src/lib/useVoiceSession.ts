// One voice conversation: microphone first, then a Glimpse session, then the ElevenLabs session.
//
// Lifecycle rules (StrictMode mounts, unmounts and remounts every component once in development):
// - nothing starts on mount; a session starts only from `connect()`, and at most one attempt runs;
// - unmount aborts an attempt still in flight and ends the live session;
// - an aborted attempt never reaches `startSession`, so a late answer cannot open a second session.
// Browsers that cannot open the microphone at 16 kHz (Firefox) resample in a worklet the SDK would
// otherwise fetch from a public CDN; the page ships its own copy instead.
import libsampleratePath from "@alexanderolsen/libsamplerate-js/dist/libsamplerate.worklet.js?url";
import { useConversation } from "@elevenlabs/react";
import type { DisconnectionDetails, HookCallbacks } from "@elevenlabs/react";
import { useCallback, useEffect, useRef, useState } from "react";

import { fetchSession, type GlimpseSession, type Transport } from "./api";
import { requestMicrophone } from "./microphone";

export type VoiceStatus = "idle" | "connecting" | "listening" | "speaking" | "error";

/** A conversation that is on: the person can talk and share pictures. */
export function isLive(status: VoiceStatus): boolean {
  return status === "listening" || status === "speaking";
}

export interface TranscriptEntry {
  id: number;
  role: "user" | "agent";
  text: string;
}

type MessagePayload = Parameters<NonNullable<HookCallbacks["onMessage"]>>[0];
type Correction = Parameters<NonNullable<HookCallbacks["onAgentResponseCorrection"]>>[0];

/** When the person interrupts, the transcript keeps what the agent actually said, not what it meant to. */
export function applyCorrection(entries: TranscriptEntry[], correction: Correction): TranscriptEntry[] {
  for (let index = entries.length - 1; index >= 0; index--) {
    const entry = entries[index];
    if (entry.role === "agent" && entry.text === correction.original_agent_response) {
      const corrected = { ...entry, text: correction.corrected_agent_response };
      return [...entries.slice(0, index), corrected, ...entries.slice(index + 1)];
    }
  }
  return entries;
}

type Phase = "idle" | "connecting" | "connected" | "error";

function messageOf(error: unknown): string {
  return error instanceof Error && error.message ? error.message : "Something went wrong. Try again.";
}

export function describeDisconnect(details: DisconnectionDetails): string | null {
  if (details.reason === "error") return `The voice connection was lost: ${details.message}`;
  return null;
}

export function useVoiceSession(transport: Transport = "websocket") {
  const [phase, setPhase] = useState<Phase>("idle");
  const [error, setError] = useState<string | null>(null);
  const [session, setSession] = useState<GlimpseSession | null>(null);
  const [transcript, setTranscript] = useState<TranscriptEntry[]>([]);
  const attemptRef = useRef<AbortController | null>(null);
  const liveRef = useRef(false);
  const nextEntryId = useRef(0);

  // The attempt, and the conversation it opened, are over. `abort` cancels an attempt still under way;
  // `keepLive` leaves liveRef as it is (unmount's endSession brings an onDisconnect that clears it).
  const forgetAttempt = useCallback(({ abort = false, keepLive = false } = {}) => {
    if (abort) attemptRef.current?.abort();
    attemptRef.current = null;
    if (!keepLive) liveRef.current = false;
  }, []);

  const fail = useCallback(
    (message: string) => {
      forgetAttempt();
      setError(message);
      setPhase("error");
    },
    [forgetAttempt],
  );

  const conversation = useConversation({
    onConnect: () => {
      liveRef.current = true;
      setPhase("connected");
    },
    onMessage: ({ role, message }: MessagePayload) => {
      if (!message.trim()) return;
      const entry = { id: nextEntryId.current++, role, text: message };
      setTranscript((entries) => [...entries, entry]);
    },
    onAgentResponseCorrection: (correction: Correction) =>
      setTranscript((entries) => applyCorrection(entries, correction)),
    onDisconnect: (details: DisconnectionDetails) => {
      const problem = describeDisconnect(details);
      if (problem) fail(problem);
      else {
        forgetAttempt();
        setPhase((current) => (current === "error" ? current : "idle"));
      }
    },
    // An error the service reports mid-conversation is shown, but the conversation goes on until it ends.
    onError: (message: string) => {
      const text = message || "The voice connection failed.";
      if (liveRef.current) setError(text);
      else fail(text);
    },
  });
  const { startSession, endSession, status: sdkStatus, isSpeaking } = conversation;

  const connect = useCallback(async () => {
    if (attemptRef.current) return;
    const attempt = new AbortController();
    attemptRef.current = attempt;
    setError(null);
    setPhase("connecting");
    try {
      await requestMicrophone();
      if (attempt.signal.aborted) return;
      const fresh = await fetchSession(transport, attempt.signal);
      if (attempt.signal.aborted) return;
      if (!fresh.signed_url && !fresh.conversation_token) {
        throw new Error(fresh.warning ?? "The server did not return a way to reach the voice agent.");
      }
      setSession(fresh);
      setTranscript([]);
      const options = { customLlmExtraBody: { session_id: fresh.session_id, session_key: fresh.session_key }, libsampleratePath };
      if (fresh.conversation_token) {
        startSession({ conversationToken: fresh.conversation_token, connectionType: "webrtc", ...options });
      } else {
        startSession({ signedUrl: fresh.signed_url!, connectionType: "websocket", ...options });
      }
    } catch (problem) {
      if (attempt.signal.aborted) return;
      fail(messageOf(problem));
    }
  }, [transport, startSession, fail]);

  const disconnect = useCallback(() => {
    forgetAttempt({ abort: true });
    endSession();
    setError(null);
    setPhase("idle");
  }, [forgetAttempt, endSession]);

  useEffect(
    () => () => {
      forgetAttempt({ abort: true, keepLive: true });
      endSession();
    },
    [forgetAttempt, endSession],
  );

  let status: VoiceStatus = "idle";
  if (phase === "error") status = "error";
  else if (phase === "connecting") status = "connecting";
  else if (phase === "connected") {
    // The SDK's own status turns "error" on any reported error, even one the conversation survives.
    if (sdkStatus === "connecting") status = "connecting";
    else status = isSpeaking ? "speaking" : "listening";
  }

  return { status, error, session, transcript, connect, disconnect, setMuted: conversation.setMuted,
           isMuted: conversation.isMuted };
}
