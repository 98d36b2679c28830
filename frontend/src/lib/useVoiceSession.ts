// One voice conversation: microphone first, then a Glimpse session, then the ElevenLabs session.
//
// The state and its rules are the reducer's (voice/phase.ts), what the page shows is derived (voice/status.ts),
// and liveness is the heartbeat's (voice/heartbeat.ts). This hook is the wiring: it turns the SDK's callbacks, its
// own deadlines and the person's presses into the reducer's events, and does what those call for (the transcript,
// the SDK's start and end, the microphone and session requests).
//
// Lifecycle rules (StrictMode mounts, unmounts and remounts every component once in development):
// - nothing starts on mount; a session starts only from `connect()` (or a reconnect), at most one attempt runs;
// - unmount aborts an attempt still in flight and ends the live session;
// - an aborted attempt never reaches `startSession`, so a late answer cannot open a second session.
// A dead connection (the heartbeat's silence, or the device offline) is ended and a new one opened, keeping the
// transcript (and the pictures, which go to the new session). A start or a reconnect that does not connect in 15 s
// gives up. Browsers that cannot open the microphone at 16 kHz (Firefox) resample in a worklet the SDK would
// otherwise fetch from a public CDN; the page ships its own copy instead.
import libsampleratePath from "@alexanderolsen/libsamplerate-js/dist/libsamplerate.worklet.js?url";
import { useConversation } from "@elevenlabs/react";
import type { DisconnectionDetails, HookCallbacks } from "@elevenlabs/react";
import { type RefObject, useCallback, useEffect, useReducer, useRef } from "react";

import { fetchSession, type GlimpseSession, hasVoice, type Transport } from "./api";
import { requestMicrophone } from "./microphone";
import type { ConversationLog, TranscriptEntry } from "./useConversationLog";
import { NOT_SET_UP, plainWords } from "./plainWords";
import { Heartbeat, watchLiveness } from "./voice/heartbeat";
import { ignoring, initialVoiceState, isEcho, reduce, startsAfresh, type VoiceEvent } from "./voice/phase";
import { deriveStatus } from "./voice/status";

export type { TranscriptEntry } from "./useConversationLog";

/** A start or a reconnect that has not connected by then gives up, with Try again. */
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

/** What the attempt under way holds that is not state: its requests' abort, and its deadline. */
interface InFlight {
  controller: AbortController;
  timer?: ReturnType<typeof setTimeout>;
}

function release(inFlight: RefObject<InFlight | null>, { abort }: { abort: boolean }) {
  const current = inFlight.current;
  if (!current) return;
  if (abort) current.controller.abort();
  clearTimeout(current.timer);
  inFlight.current = null;
}

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
  const { add: addEntry, edit: editTranscript, clear: clearTranscript, turnStarted, turnAnswered } = log;
  const [state, dispatch] = useReducer(reduce, initialVoiceState);
  const { phase, error, notice, session, tentative, awaitingAgent, muted } = state;

  // The state after every event so far. SDK callbacks, deadlines and the person's presses run between renders,
  // several in one tick (the SDK's connect is onStatusChange, onConnect and onModeChange in a row), and each must
  // see what the ones before it did; React's `state` is as of the last render. Every event goes through `send`,
  // so React reaches the same state by the same reducer.
  const latest = useRef(initialVoiceState);
  // The attempt under way's abort and deadline: not state (nothing shows them), let go of through `send`.
  const inFlight = useRef<InFlight | null>(null);
  // Fed by every server event (audio included, many a second): in state it would render the page for each.
  const heartbeat = useRef(new Heartbeat());
  // The caller's latest callback, for an attempt that gets its session after renders with a newer one.
  const sessionSeen = useRef(onSession);
  sessionSeen.current = onSession;

  const send = useCallback((event: VoiceEvent) => {
    const before = latest.current;
    const after = reduce(before, event);
    if (after === before) return;
    latest.current = after;
    dispatch(event);
    // An attempt the reducer let go of: its deadline goes and, unless it ended by connecting, its requests stop.
    if (before.attempt && after.attempt?.id !== before.attempt.id) {
      release(inFlight, { abort: event.type !== "connected" });
    }
  }, []);

  const conversation = useConversation({
    micMuted: muted,
    onConnect: () => {
      heartbeat.current.reset(Date.now());
      send({ type: "connected" });
    },
    onIncomingEvent: (event: { type?: unknown; tentative_user_transcription_event?: { user_transcript?: unknown } }) => {
      heartbeat.current.event(event?.type, Date.now());
      if (event?.type === "tentative_user_transcript") {
        const text = event.tentative_user_transcription_event?.user_transcript;
        send({ type: "heard", text: typeof text === "string" ? text : null });
      }
    },
    onMessage: ({ role, message }: MessagePayload) => {
      const now = latest.current;
      if (ignoring(now) || !message.trim()) return;
      if (role === "user") {
        if (!isEcho(now, message)) { // what the page said for the person is shown already
          addEntry("user", message);
          turnStarted();
        }
        send({ type: "userSaid", text: message });
      } else {
        mark("glimpse:agent-words");
        addEntry("agent", message);
        // The agent answered the turn under way: pictures uploaded before that turn began are seen.
        if (now.awaitingAgent) turnAnswered();
        send({ type: "agentSaid" });
      }
    },
    onModeChange: ({ mode }: { mode: string }) => {
      if (mode !== "speaking") return;
      if (latest.current.awaitingAgent) turnAnswered();
      send({ type: "agentSpeaking" });
    },
    onAgentResponseCorrection: (correction: Correction) =>
      editTranscript((entries) => applyCorrection(entries, correction)),
    onDisconnect: (details: DisconnectionDetails) =>
      send({ type: "disconnected", reason: details.reason,
             message: details.reason === "error" ? details.message : undefined }),
    onError: (message: string) => send({ type: "serviceError", message }),
  });
  const { startSession, endSession, status: sdkStatus, isSpeaking, sendUserMessage } = conversation;

  const open = useCallback(
    async ({ resume }: { resume: boolean }) => {
      if (latest.current.attempt) return;
      const fresh = startsAfresh(latest.current, resume);
      send({ type: "open", resume });
      const id = latest.current.attempt!.id;
      const attempt: InFlight = { controller: new AbortController() };
      inFlight.current = attempt;
      const signal = attempt.controller.signal;
      const giveUp = () => setTimeout(() => {
        if (latest.current.attempt?.id !== id) return;
        send({ type: "gaveUp", attempt: id });
        endSession();
      }, RECONNECT_TIMEOUT_MS);
      if (fresh) clearTranscript(); // a new conversation; after a failure (Try again) the transcript stays
      if (resume) attempt.timer = giveUp();
      try {
        if (!resume) await requestMicrophone(); // a reconnect already has the microphone
        if (signal.aborted) return;
        const ready = await fetchSession(transport, signal);
        if (signal.aborted) return;
        sessionSeen.current?.(ready);
        if (!hasVoice(ready)) throw new Error(plainWords(ready.warning, NOT_SET_UP));
        send({ type: "sessionReady", attempt: id, session: ready });
        const options = { customLlmExtraBody: { session_id: ready.session_id, session_key: ready.session_key },
                          libsampleratePath };
        // The SDK's start has no deadline of its own (and ignores a start while an earlier one is under way).
        if (!resume && inFlight.current === attempt) attempt.timer = giveUp();
        if (ready.conversation_token) {
          startSession({ conversationToken: ready.conversation_token, connectionType: "webrtc", ...options });
        } else {
          startSession({ signedUrl: ready.signed_url!, connectionType: "websocket", ...options });
        }
      } catch (problem) {
        if (signal.aborted) return;
        send({ type: "failed", attempt: id, message: problem instanceof Error ? problem.message : undefined });
      }
    },
    [transport, startSession, endSession, send, clearTranscript],
  );

  const connect = useCallback(() => open({ resume: false }), [open]);

  /** The connection is dead (or the device went offline): end it and open a new one, keeping what was said. */
  const reconnect = useCallback(() => {
    if (latest.current.attempt || latest.current.phase !== "connected") return;
    send({ type: "connectionDied" });
    endSession();
    void open({ resume: true });
  }, [endSession, open, send]);

  const disconnect = useCallback(() => {
    send({ type: "ended" });
    endSession();
  }, [send, endSession]);

  /** Says something for the person (a user message: it starts a turn). False when there is no live conversation. */
  const say = useCallback(
    (text: string): boolean => {
      if (latest.current.phase !== "connected") return false;
      try {
        sendUserMessage(text);
      } catch {
        return false;
      }
      addEntry("user", text);
      turnStarted();
      send({ type: "pageSaid", text });
      return true;
    },
    [sendUserMessage, addEntry, turnStarted, send],
  );

  /** The person moved on (to typing): a failure's message and its Try again go. */
  const dismiss = useCallback(() => send({ type: "dismissed" }), [send]);
  const setMuted = useCallback((value: boolean) => send({ type: "muted", muted: value }), [send]);

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
    const timer = setTimeout(() => send({ type: "answerOverdue" }), ANSWER_TIMEOUT_MS);
    return () => clearTimeout(timer);
  }, [awaitingAgent, phase, send]);

  useEffect(
    () => () => {
      send({ type: "ended" }); // the reducer lets go of the attempt with its requests (kept in step under Fast Refresh)
      release(inFlight, { abort: true });
      endSession();
    },
    [endSession, send],
  );

  const status = deriveStatus({ phase, sdkStatus, isSpeaking, isMuted: muted, awaitingAgent });

  return {
    status, error, notice, session, tentative,
    connect, disconnect, say, dismiss, isMuted: muted, setMuted,
    levels: {
      getInputVolume: conversation.getInputVolume,
      getOutputVolume: conversation.getOutputVolume,
      getInputByteFrequencyData: conversation.getInputByteFrequencyData,
      getOutputByteFrequencyData: conversation.getOutputByteFrequencyData,
    },
  };
}

export type AudioLevels = ReturnType<typeof useVoiceSession>["levels"];
