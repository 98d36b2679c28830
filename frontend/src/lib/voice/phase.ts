// The voice session's state, as a pure reducer: the phase of the call, the attempt that opens it, and what the page
// says about it (a failure, a notice, the person's words before the service settles on them, whether an answer is
// awaited, the microphone muted). No React, no timers, no SDK: useVoiceSession turns SDK callbacks, its deadlines
// and the person's presses into these events and performs the effects (the transcript, the SDK calls) itself.
//
// Attempts: a conversation opens through one attempt at a time (microphone, Glimpse session, then the SDK's start).
// Until the attempt has called startSession (`started`), the events that end or answer a turn (the person's and the
// agent's words, a service error, a disconnect) belong to a conversation the page has let go of — the one a
// reconnect ended, or a call just ended whose disconnect arrives late — and change nothing. A connect and tentative
// words are taken as they come (the SDK itself drops a connect from a conversation already ended).
import type { GlimpseSession } from "../api";
import { CONNECTION_LOST, describeVoiceFailure, NO_ANSWER, plainWords } from "../plainWords";

export type Phase = "idle" | "connecting" | "connected" | "reconnecting" | "lost" | "error";

export interface Attempt {
  /** Which attempt: a deadline or a failure that outlives its attempt names an old one and changes nothing. */
  id: number;
  /** Reopening a conversation that died: the transcript and the microphone are kept, a failure is "lost". */
  resume: boolean;
  /** startSession was called: from here on, the new conversation's events are this attempt's. */
  started: boolean;
}

export interface VoiceState {
  phase: Phase;
  /** The attempt under way, until it connects or fails. */
  attempt: Attempt | null;
  /** Attempts opened so far (the last one's id). */
  attempts: number;
  /** The Glimpse session of the conversation last started. */
  session: GlimpseSession | null;
  /** A failure that ended the conversation (with Try again). */
  error: string | null;
  /** Something to tell the person while the conversation goes on (or after the agent ended it). */
  notice: string | null;
  /** What the person is saying, before the service settles on it. */
  tentative: string | null;
  /** The person's turn ended (their words arrived, or the page spoke for them) and the agent has not answered. */
  awaitingAgent: boolean;
  muted: boolean;
  /** What the page last said for the person: the service's echo of it is not a new turn. */
  echo: string | null;
}

export type VoiceEvent =
  /** connect() (resume false), or a reconnect of a conversation that died (resume true). */
  | { type: "open"; resume: boolean }
  /** The attempt has its Glimpse session and is about to call startSession. */
  | { type: "sessionReady"; attempt: number; session: GlimpseSession }
  /** The attempt could not get the microphone or a session (or could not start). */
  | { type: "failed"; attempt: number; message?: string }
  /** The attempt's deadline passed before the SDK connected. */
  | { type: "gaveUp"; attempt: number }
  /** The SDK's onConnect. */
  | { type: "connected" }
  /** A tentative transcript of the person's words (null: not text). */
  | { type: "heard"; text: string | null }
  /** The service's transcript of the person's turn (never blank). */
  | { type: "userSaid"; text: string }
  /** The page said something for the person (a typed message, a picture's reaction). */
  | { type: "pageSaid"; text: string }
  /** The agent's words (never blank). */
  | { type: "agentSaid" }
  /** The agent's voice started. */
  | { type: "agentSpeaking" }
  /** The SDK's onError. */
  | { type: "serviceError"; message: string }
  /** The SDK's onDisconnect. */
  | { type: "disconnected"; reason: "error" | "agent" | "user"; message?: string }
  /** The watchdog found the live connection dead (or the device went offline): the page reopens it. */
  | { type: "connectionDied" }
  /** The agent has not answered the person's turn in time. */
  | { type: "answerOverdue" }
  /** The person pressed End conversation. */
  | { type: "ended" }
  /** The person moved on (to typing): a failure's message and its Try again go. */
  | { type: "dismissed" }
  | { type: "muted"; muted: boolean };

export const START_FAILED = "Could not start the conversation with the voice agent. Try again in a moment.";
export const MID_CALL_PROBLEM = "Something went wrong on the voice line, but the conversation goes on.";
export const AGENT_ENDED = "The agent ended the conversation.";

export const initialVoiceState: VoiceState = {
  phase: "idle", attempt: null, attempts: 0, session: null, error: null, notice: null, tentative: null,
  awaitingAgent: false, muted: false, echo: null,
};

/** Events of a conversation the page has let go of while it opens the next one. */
export function ignoring(state: VoiceState): boolean {
  return state.attempt !== null && !state.attempt.started;
}

/** A new conversation (not a reconnect, nor Try again after a failure): the transcript and the mute start over. */
export function startsAfresh(state: VoiceState, resume: boolean): boolean {
  return !resume && state.phase === "idle";
}

/** The service repeating what the page said for the person: shown already, and not a turn of its own. */
export function isEcho(state: VoiceState, text: string): boolean {
  return state.echo === text;
}

/** `state` with `changes`, or `state` itself when they change nothing (React then has nothing to render). */
function patch(state: VoiceState, changes: Partial<VoiceState>): VoiceState {
  const keys = Object.keys(changes) as (keyof VoiceState)[];
  return keys.some((key) => !Object.is(changes[key], state[key])) ? { ...state, ...changes } : state;
}

function fail(state: VoiceState, error: string, phase: "error" | "lost" = "error"): VoiceState {
  return patch(state, { attempt: null, awaitingAgent: false, tentative: null, error, phase });
}

export function reduce(state: VoiceState, event: VoiceEvent): VoiceState {
  switch (event.type) {
    case "open": {
      if (state.attempt) return state; // one attempt at a time
      const { resume } = event;
      const id = state.attempts + 1;
      return patch(state, {
        attempt: { id, resume, started: false }, attempts: id,
        error: null, notice: null, awaitingAgent: false, tentative: null,
        muted: startsAfresh(state, resume) ? false : state.muted,
        phase: resume ? "reconnecting" : "connecting",
      });
    }
    case "sessionReady": {
      // The session is the one the SDK is about to start, whichever attempt asked for it.
      const mine = state.attempt?.id === event.attempt;
      return patch(state, { session: event.session, attempt: mine ? { ...state.attempt!, started: true } : state.attempt });
    }
    case "failed":
      if (state.attempt?.id !== event.attempt) return state;
      return state.attempt.resume ? fail(state, CONNECTION_LOST, "lost") : fail(state, plainWords(event.message, START_FAILED));
    case "gaveUp":
      if (state.attempt?.id !== event.attempt) return state;
      return state.attempt.resume ? fail(state, CONNECTION_LOST, "lost") : fail(state, START_FAILED);
    case "connected":
      return patch(state, { attempt: null, error: null, phase: "connected" });
    case "heard":
      return patch(state, { tentative: event.text?.trim() ? event.text : null });
    case "userSaid":
      if (ignoring(state)) return state;
      if (isEcho(state, event.text)) return patch(state, { tentative: null, notice: null, echo: null });
      return patch(state, { tentative: null, notice: null, awaitingAgent: true });
    case "pageSaid":
      if (state.phase !== "connected") return state;
      return patch(state, { echo: event.text, notice: null, awaitingAgent: true });
    case "agentSaid":
      if (ignoring(state)) return state;
      return patch(state, { tentative: null, notice: state.notice === NO_ANSWER ? null : state.notice,
                            awaitingAgent: false });
    case "agentSpeaking":
      return patch(state, { awaitingAgent: false });
    case "serviceError":
      // An error the service reports mid-conversation is shown, but the conversation goes on until it ends.
      if (ignoring(state)) return state;
      if (state.phase === "connected") {
        return state.awaitingAgent ? patch(state, { awaitingAgent: false, notice: NO_ANSWER })
          : patch(state, { notice: MID_CALL_PROBLEM });
      }
      if (state.phase === "connecting") return fail(state, plainWords(event.message, START_FAILED));
      if (state.phase === "reconnecting") return fail(state, CONNECTION_LOST, "lost");
      return state;
    case "disconnected":
      if (ignoring(state)) return state;
      if (event.reason === "error") {
        return fail(state, describeVoiceFailure(event.message, { duringTurn: state.awaitingAgent }));
      }
      return patch(state, {
        attempt: null, tentative: null, awaitingAgent: false,
        notice: event.reason === "agent" ? AGENT_ENDED : state.notice,
        // a failure stays on screen with its Try again
        phase: state.phase === "error" || state.phase === "lost" ? state.phase : "idle",
      });
    case "connectionDied":
      if (state.attempt || state.phase !== "connected") return state;
      return patch(state, { phase: "reconnecting" });
    case "answerOverdue":
      if (!state.awaitingAgent || state.phase !== "connected") return state;
      return patch(state, { awaitingAgent: false, notice: NO_ANSWER });
    case "ended":
      return patch(state, { attempt: null, error: null, notice: null, awaitingAgent: false, tentative: null,
                            phase: "idle" });
    case "dismissed":
      return patch(state, { error: null, notice: null,
                            phase: state.phase === "error" || state.phase === "lost" ? "idle" : state.phase });
    case "muted":
      return patch(state, { muted: event.muted });
  }
}
