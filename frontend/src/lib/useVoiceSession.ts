// One voice conversation: microphone first, then a Glimpse session, then the ElevenLabs session.
//
// Lifecycle rules (StrictMode mounts, unmounts and remounts every component once in development):
// - nothing starts on mount; a session starts only from `connect()` (or a reconnect), at most one attempt runs;
// - unmount aborts an attempt still in flight and ends the live session;
// - an aborted attempt never reaches `startSession`, so a late answer cannot open a second session.
// Liveness (voice/heartbeat.ts): a connection found dead by the server's silence, or the device offline, is ended
// and a new one opened, keeping the transcript (and the pictures, which go to the new session). A reconnect that
// does not succeed in 15 s gives up.
// Browsers that cannot open the microphone at 16 kHz (Firefox) resample in a worklet the SDK would
// otherwise fetch from a public CDN; the page ships its own copy instead.
import libsampleratePath from "@alexanderolsen/libsamplerate-js/dist/libsamplerate.worklet.js?url";
import { useConversation } from "@elevenlabs/react";
import type { DisconnectionDetails, HookCallbacks } from "@elevenlabs/react";
import { useCallback, useEffect, useRef, useState } from "react";

import { fetchSession, type GlimpseSession, hasVoice, type Transport } from "./api";
import { requestMicrophone } from "./microphone";
import type { ConversationLog, TranscriptEntry } from "./useConversationLog";
import { CONNECTION_LOST, describeVoiceFailure, NO_ANSWER, NOT_SET_UP, plainWords } from "./plainWords";
import { Heartbeat, watchLiveness } from "./voice/heartbeat";
import type { Phase } from "./voice/phase";
import { deriveStatus } from "./voice/status";

export type { TranscriptEntry } from "./useConversationLog";

/** A reconnect that has not connected by then gives up: "Connection lost", with Try again. */
export const RECONNECT_TIMEOUT_MS = 15_000;
/** The person's turn ended this long ago and the agent has said nothing: tell them. */
export const ANSWER_TIMEOUT_MS = 30_000;

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

interface Attempt {
  controller: AbortController;
  /** startSession was called: from here on, the new conversation's events are this attempt's. */
  started: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

const START_FAILED = "Could not start the conversation with the voice agent. Try again in a moment.";
const MID_CALL_PROBLEM = "Something went wrong on the voice line, but the conversation goes on.";
const AGENT_ENDED = "The agent ended the conversation.";

function mark(name: string) {
  try {
    performance.mark(name);
  } catch {
    // marks are a measurement aid only
  }
}

interface VoiceOptions {
  /** Every session the server hands out: whether it has voice, whether it answers with its demo model. */
  onSession?: (session: GlimpseSession) => void;
}

export function useVoiceSession(transport: Transport, log: ConversationLog, { onSession }: VoiceOptions = {}) {
  const { add: addEntry, edit: editTranscript, clear: clearTranscript, turnStarted: logTurnStarted,
          turnAnswered } = log;
  const [phase, setPhaseState] = useState<Phase>("idle");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [session, setSession] = useState<GlimpseSession | null>(null);
  const [tentative, setTentative] = useState<string | null>(null);
  const [awaitingAgent, setAwaitingState] = useState(false);
  const [muted, setMutedState] = useState(false);

  const phaseRef = useRef<Phase>("idle");
  const attemptRef = useRef<Attempt | null>(null);
  const awaitingRef = useRef(false);
  const heartbeat = useRef(new Heartbeat());
  const lastSaid = useRef<string | null>(null);
  const sessionSeen = useRef(onSession);
  sessionSeen.current = onSession;

  const setPhase = useCallback((next: Phase) => {
    phaseRef.current = next;
    setPhaseState(next);
  }, []);

  const setAwaiting = useCallback((value: boolean) => {
    awaitingRef.current = value;
    setAwaitingState(value);
  }, []);

  /** The agent answered the turn under way: pictures uploaded before that turn began are seen. */
  const answered = useCallback(() => {
    if (!awaitingRef.current) return;
    setAwaiting(false);
    turnAnswered();
  }, [setAwaiting, turnAnswered]);

  const turnStarted = useCallback(() => {
    logTurnStarted();
    setAwaiting(true);
  }, [logTurnStarted, setAwaiting]);

  const forgetAttempt = useCallback(({ abort = false } = {}) => {
    const attempt = attemptRef.current;
    if (!attempt) return;
    if (abort) attempt.controller.abort();
    clearTimeout(attempt.timer);
    attemptRef.current = null;
  }, []);

  const fail = useCallback(
    (message: string, phase: "error" | "lost" = "error") => {
      forgetAttempt({ abort: true });
      setAwaiting(false);
      setTentative(null);
      setError(message);
      setPhase(phase);
    },
    [forgetAttempt, setAwaiting, setPhase],
  );

  /** Events of a conversation this page has let go of while it opens the next one. */
  // (also the late onDisconnect of a call just ended, arriving while the next attempt is still on its way)
  const ignoring = () => attemptRef.current !== null && !attemptRef.current.started;

  const conversation = useConversation({
    micMuted: muted,
    onConnect: () => {
      forgetAttempt();
      heartbeat.current.reset(Date.now());
      setError(null);
      setPhase("connected");
    },
    onIncomingEvent: (event: { type?: unknown; tentative_user_transcription_event?: { user_transcript?: unknown } }) => {
      heartbeat.current.event(event?.type, Date.now());
      if (event?.type === "tentative_user_transcript") {
        const text = event.tentative_user_transcription_event?.user_transcript;
        setTentative(typeof text === "string" && text.trim() ? text : null);
      }
    },
    onMessage: ({ role, message }: MessagePayload) => {
      if (ignoring() || !message.trim()) return;
      if (role === "user") {
        setTentative(null);
        setNotice(null);
        if (lastSaid.current === message) {
          lastSaid.current = null; // the service echoed what the page said for the person: shown already
          return;
        }
        addEntry("user", message);
        turnStarted();
      } else {
        mark("glimpse:agent-words");
        setTentative(null);
        setNotice((current) => (current === NO_ANSWER ? null : current));
        addEntry("agent", message);
        answered();
      }
    },
    onModeChange: ({ mode }: { mode: string }) => {
      if (mode === "speaking") answered();
    },
    onAgentResponseCorrection: (correction: Correction) =>
      editTranscript((entries) => applyCorrection(entries, correction)),
    onDisconnect: (details: DisconnectionDetails) => {
      if (ignoring()) return;
      setTentative(null);
      if (details.reason === "error") {
        fail(describeVoiceFailure(details.message, { duringTurn: awaitingRef.current }));
        return;
      }
      forgetAttempt();
      setAwaiting(false);
      if (details.reason === "agent") setNotice(AGENT_ENDED);
      if (phaseRef.current !== "error" && phaseRef.current !== "lost") setPhase("idle");
    },
    // An error the service reports mid-conversation is shown, but the conversation goes on until it ends.
    onError: (message: string) => {
      if (ignoring()) return;
      if (phaseRef.current === "connected") {
        if (awaitingRef.current) {
          setAwaiting(false);
          setNotice(NO_ANSWER);
        } else {
          setNotice(MID_CALL_PROBLEM);
        }
        return;
      }
      if (phaseRef.current === "connecting" || phaseRef.current === "reconnecting") {
        fail(phaseRef.current === "reconnecting" ? CONNECTION_LOST : plainWords(message, START_FAILED),
             phaseRef.current === "reconnecting" ? "lost" : "error");
      }
    },
  });
  const { startSession, endSession, status: sdkStatus, isSpeaking, sendUserMessage } = conversation;

  const open = useCallback(
    async ({ resume }: { resume: boolean }) => {
      if (attemptRef.current) return;
      const attempt: Attempt = { controller: new AbortController(), started: false };
      attemptRef.current = attempt;
      const signal = attempt.controller.signal;
      setError(null);
      setNotice(null);
      setAwaiting(false);
      setTentative(null);
      if (!resume && phaseRef.current === "idle") {
        clearTranscript(); // a new conversation; after a failure (Try again) the transcript stays
        setMutedState(false);
      }
      setPhase(resume ? "reconnecting" : "connecting");
      if (resume) {
        attempt.timer = setTimeout(() => {
          if (attemptRef.current !== attempt) return;
          endSession();
          fail(CONNECTION_LOST, "lost");
        }, RECONNECT_TIMEOUT_MS);
      }
      try {
        if (!resume) await requestMicrophone(); // a reconnect already has the microphone
        if (signal.aborted) return;
        const fresh = await fetchSession(transport, signal);
        if (signal.aborted) return;
        sessionSeen.current?.(fresh);
        if (!hasVoice(fresh)) throw new Error(plainWords(fresh.warning, NOT_SET_UP));
        setSession(fresh);
        attempt.started = true;
        const options = { customLlmExtraBody: { session_id: fresh.session_id, session_key: fresh.session_key },
                          libsampleratePath };
        if (!resume) {
          // The SDK's start has no deadline of its own (and ignores a start while an earlier one is under way).
          attempt.timer = setTimeout(() => {
            if (attemptRef.current !== attempt) return;
            endSession();
            fail(START_FAILED);
          }, RECONNECT_TIMEOUT_MS);
        }
        if (fresh.conversation_token) {
          startSession({ conversationToken: fresh.conversation_token, connectionType: "webrtc", ...options });
        } else {
          startSession({ signedUrl: fresh.signed_url!, connectionType: "websocket", ...options });
        }
      } catch (problem) {
        if (signal.aborted || attemptRef.current !== attempt) return;
        if (resume) fail(CONNECTION_LOST, "lost");
        else fail(problem instanceof Error ? plainWords(problem.message, START_FAILED) : START_FAILED);
      }
    },
    [transport, startSession, endSession, fail, setAwaiting, setPhase, clearTranscript],
  );

  const connect = useCallback(() => open({ resume: false }), [open]);

  /** The connection is dead (or the device went offline): end it and open a new one, keeping what was said. */
  const reconnect = useCallback(() => {
    if (attemptRef.current || phaseRef.current !== "connected") return;
    setPhase("reconnecting");
    endSession();
    void open({ resume: true });
  }, [endSession, open, setPhase]);

  const disconnect = useCallback(() => {
    forgetAttempt({ abort: true });
    endSession();
    setError(null);
    setNotice(null);
    setAwaiting(false);
    setTentative(null);
    setPhase("idle");
  }, [forgetAttempt, endSession, setAwaiting, setPhase]);

  /** Says something for the person (a user message: it starts a turn). False when there is no live conversation. */
  const say = useCallback(
    (text: string): boolean => {
      if (phaseRef.current !== "connected") return false;
      try {
        sendUserMessage(text);
      } catch {
        return false;
      }
      lastSaid.current = text;
      setNotice(null);
      addEntry("user", text);
      turnStarted();
      return true;
    },
    [sendUserMessage, addEntry, turnStarted],
  );

  /** The person moved on (to typing): a failure's message and its Try again go. */
  const dismiss = useCallback(() => {
    setError(null);
    setNotice(null);
    if (phaseRef.current === "error" || phaseRef.current === "lost") setPhase("idle");
  }, [setPhase]);

  // The watchdog: a dead connection is found within the bound, not when the person gives up.
  useEffect(() => (phase === "connected" ? watchLiveness(heartbeat.current, reconnect) : undefined),
            [phase, reconnect]);

  // Back online after a lost connection: try once more on the person's behalf.
  useEffect(() => {
    if (phase !== "lost") return;
    const online = () => void open({ resume: true });
    window.addEventListener("online", online);
    return () => window.removeEventListener("online", online);
  }, [phase, open]);

  // An answer that never comes: say so instead of thinking forever.
  useEffect(() => {
    if (!awaitingAgent || phase !== "connected") return;
    const timer = setTimeout(() => {
      setAwaiting(false);
      setNotice(NO_ANSWER);
    }, ANSWER_TIMEOUT_MS);
    return () => clearTimeout(timer);
  }, [awaitingAgent, phase, setAwaiting]);

  useEffect(
    () => () => {
      forgetAttempt({ abort: true });
      endSession();
    },
    [forgetAttempt, endSession],
  );

  const status = deriveStatus({ phase, sdkStatus, isSpeaking, isMuted: muted, awaitingAgent });

  return {
    status, error, notice, session, tentative,
    connect, disconnect, say, dismiss, isMuted: muted, setMuted: setMutedState,
    levels: {
      getInputVolume: conversation.getInputVolume,
      getOutputVolume: conversation.getOutputVolume,
      getInputByteFrequencyData: conversation.getInputByteFrequencyData,
      getOutputByteFrequencyData: conversation.getOutputByteFrequencyData,
    },
  };
}

export type AudioLevels = ReturnType<typeof useVoiceSession>["levels"];
