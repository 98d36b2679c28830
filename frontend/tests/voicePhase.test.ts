// @vitest-environment node
// The voice session's reducer as a table: each row a state, an event and the state that follows.
import { describe, expect, it } from "vitest";

import type { GlimpseSession } from "../src/lib/api";
import { CONNECTION_LOST, NO_ANSWER } from "../src/lib/plainWords";
import {
  AGENT_ENDED, initialVoiceState, MID_CALL_PROBLEM, reduce, START_FAILED, type VoiceEvent, type VoiceState,
} from "../src/lib/voice/phase";

const SESSION: GlimpseSession = {
  session_id: "sess_1", session_key: "key_1", upload_token: "tok_1", upload_token_expires_at: 2_000_000_000,
  agent_id: "agent_01", transport: "websocket", signed_url: "wss://voice.example/1",
};
const SECOND: GlimpseSession = { ...SESSION, session_id: "sess_2", upload_token: "tok_2" };
const PICTURE = "I'm showing you a picture.";

const at = (changes: Partial<VoiceState>): VoiceState => ({ ...initialVoiceState, ...changes });

// The states the rows start from.
const idle = initialVoiceState;
const connecting = at({ phase: "connecting", attempt: { id: 1, resume: false, started: false }, attempts: 1 });
const starting = at({ phase: "connecting", attempt: { id: 1, resume: false, started: true }, attempts: 1,
                      session: SESSION });
const live = at({ phase: "connected", attempts: 1, session: SESSION });
const awaiting = { ...live, awaitingAgent: true };
/** The watchdog gave up on a live conversation; the new attempt has not opened yet. */
const dying = { ...live, phase: "reconnecting" as const };
const reopening = at({ phase: "reconnecting", attempt: { id: 2, resume: true, started: false }, attempts: 2,
                       session: SESSION });
const reopened = at({ phase: "reconnecting", attempt: { id: 2, resume: true, started: true }, attempts: 2,
                      session: SECOND });
const failed = at({ phase: "error", attempts: 1, error: START_FAILED, session: SESSION });
const lost = at({ phase: "lost", attempts: 2, error: CONNECTION_LOST, session: SECOND });
/** A call just ended (End, or the agent hung up), and Start pressed again: the next attempt is on its way. */
const afterEnd = at({ phase: "connecting", attempt: { id: 2, resume: false, started: false }, attempts: 2,
                      session: SESSION });

type Row = [name: string, state: VoiceState, event: VoiceEvent, expected: VoiceState | "same"];

const ROWS: Row[] = [
  // opening
  ["Start opens the first attempt; a new conversation is not muted",
    { ...idle, muted: true }, { type: "open", resume: false },
    at({ phase: "connecting", attempt: { id: 1, resume: false, started: false }, attempts: 1 })],
  ["Try again after a failure opens the next attempt, clears the failure and keeps the mute",
    { ...failed, muted: true, notice: AGENT_ENDED }, { type: "open", resume: false },
    at({ phase: "connecting", attempt: { id: 2, resume: false, started: false }, attempts: 2, session: SESSION,
         muted: true })],
  ["a second Start while one attempt is under way does nothing",
    connecting, { type: "open", resume: false }, "same"],
  ["a reconnect opens an attempt that resumes, keeping the mute",
    { ...dying, muted: true, tentative: "what is", awaitingAgent: true }, { type: "open", resume: true },
    { ...dying, muted: true, attempt: { id: 2, resume: true, started: false }, attempts: 2 }],
  ["back online after a lost connection opens an attempt that resumes",
    lost, { type: "open", resume: true },
    at({ phase: "reconnecting", attempt: { id: 3, resume: true, started: false }, attempts: 3, session: SECOND })],
  ["the attempt's session arrives: it is started",
    connecting, { type: "sessionReady", attempt: 1, session: SESSION }, starting],
  ["a session fetched for an attempt no longer current is still the session, and starts nothing",
    afterEnd, { type: "sessionReady", attempt: 1, session: SECOND }, { ...afterEnd, session: SECOND }],
  ["the SDK connects: live",
    starting, { type: "connected" }, live],
  ["a reconnect connects: live again, on the new session",
    reopened, { type: "connected" }, at({ phase: "connected", attempts: 2, session: SECOND })],

  // an attempt that fails
  ["a refused microphone is said in its own plain words",
    connecting, { type: "failed", attempt: 1, message: "Microphone access was refused." },
    at({ phase: "error", attempts: 1, error: "Microphone access was refused." })],
  ["a technical failure is said in the page's words",
    connecting, { type: "failed", attempt: 1, message: "TypeError: fetch failed" },
    at({ phase: "error", attempts: 1, error: START_FAILED })],
  ["a failure without a message",
    connecting, { type: "failed", attempt: 1 }, at({ phase: "error", attempts: 1, error: START_FAILED })],
  ["a reconnect that fails is a lost connection",
    reopening, { type: "failed", attempt: 2, message: "Too many sessions" },
    at({ phase: "lost", attempts: 2, error: CONNECTION_LOST, session: SESSION })],
  ["the failure of an attempt let go of changes nothing",
    afterEnd, { type: "failed", attempt: 1, message: "aborted" }, "same"],
  ["a start that never connects gives up after its deadline (15 s)",
    { ...starting, tentative: "hel" }, { type: "gaveUp", attempt: 1 },
    at({ phase: "error", attempts: 1, session: SESSION, error: START_FAILED })],
  ["a reconnect that never connects gives up: connection lost",
    reopened, { type: "gaveUp", attempt: 2 },
    at({ phase: "lost", attempts: 2, session: SECOND, error: CONNECTION_LOST })],
  ["a reconnect still fetching its session gives up too",
    reopening, { type: "gaveUp", attempt: 2 },
    at({ phase: "lost", attempts: 2, session: SESSION, error: CONNECTION_LOST })],
  ["the deadline of an attempt that connected changes nothing",
    live, { type: "gaveUp", attempt: 1 }, "same"],
  ["an error while connecting fails the start, in plain words",
    starting, { type: "serviceError", message: "The agent is busy." },
    at({ phase: "error", attempts: 1, session: SESSION, error: "The agent is busy." })],
  ["an error while reconnecting is a lost connection",
    reopened, { type: "serviceError", message: "Server error: quota" },
    at({ phase: "lost", attempts: 2, session: SECOND, error: CONNECTION_LOST })],

  // live
  ["what the person is saying shows before the service settles on it",
    live, { type: "heard", text: "what is in" }, { ...live, tentative: "what is in" }],
  ["blank words in progress show nothing",
    { ...live, tentative: "what is in" }, { type: "heard", text: "  " }, live],
  ["a tentative transcript that is not text shows nothing",
    { ...live, tentative: "what is in" }, { type: "heard", text: null }, live],
  ["the person's turn ends: thinking, the words in progress and a notice gone",
    { ...live, tentative: "what is in", notice: MID_CALL_PROBLEM }, { type: "userSaid", text: "What is in it?" },
    awaiting],
  ["the page speaks for the person: a turn, whose echo is expected",
    { ...live, notice: NO_ANSWER }, { type: "pageSaid", text: PICTURE },
    { ...awaiting, echo: PICTURE }],
  ["the page cannot speak for the person while not live",
    starting, { type: "pageSaid", text: PICTURE }, "same"],
  ["the service's echo of what the page said is not a new turn",
    { ...awaiting, echo: PICTURE, tentative: "I'm show" }, { type: "userSaid", text: PICTURE }, awaiting],
  ["the same words again, once their echo came, are a turn",
    live, { type: "userSaid", text: PICTURE }, awaiting],
  ["the agent's words answer the turn, and take the 'didn't answer' notice with them",
    { ...awaiting, notice: NO_ANSWER, tentative: "and" }, { type: "agentSaid" }, live],
  ["the agent's words leave another notice",
    { ...live, notice: MID_CALL_PROBLEM }, { type: "agentSaid" }, { ...live, notice: MID_CALL_PROBLEM }],
  ["the agent's voice answers the turn before its words",
    awaiting, { type: "agentSpeaking" }, live],
  ["an error mid-conversation is a notice; the conversation goes on",
    live, { type: "serviceError", message: "Server error: transcription hiccup" },
    { ...live, notice: MID_CALL_PROBLEM }],
  ["an error while the agent should be answering: the agent didn't answer",
    awaiting, { type: "serviceError", message: "Server error: custom_llm generation failed" },
    { ...live, notice: NO_ANSWER }],
  ["an error with no conversation changes nothing",
    idle, { type: "serviceError", message: "late" }, "same"],
  ["an answer that never comes is said",
    awaiting, { type: "answerOverdue" }, { ...live, notice: NO_ANSWER }],
  ["an answer overdue after it came changes nothing",
    live, { type: "answerOverdue" }, "same"],
  ["muted",
    live, { type: "muted", muted: true }, { ...live, muted: true }],
  ["unmuted",
    { ...live, muted: true }, { type: "muted", muted: false }, live],
  ["muted again changes nothing",
    { ...live, muted: true }, { type: "muted", muted: true }, "same"],

  // ends
  ["the service closes the conversation with an error after the person's turn: the agent didn't answer",
    { ...awaiting, tentative: "so" }, { type: "disconnected", reason: "error", message: "custom_llm generation failed" },
    at({ phase: "error", attempts: 1, session: SESSION, error: NO_ANSWER })],
  ["a dropped connection",
    live, { type: "disconnected", reason: "error", message: "Connection closed unexpectedly: ws error 1006" },
    at({ phase: "error", attempts: 1, session: SESSION,
         error: "The voice connection was lost. Press Try again to reconnect." })],
  ["the agent hangs up: not connected, and said",
    { ...awaiting, tentative: "so" }, { type: "disconnected", reason: "agent" },
    at({ attempts: 1, session: SESSION, notice: AGENT_ENDED })],
  ["the conversation ends",
    live, { type: "disconnected", reason: "user" }, at({ attempts: 1, session: SESSION })],
  ["the conversation a failure ended disconnects: the failure stays",
    lost, { type: "disconnected", reason: "user" }, "same"],
  ["a late disconnect of a call already ended does not take over the next attempt",
    afterEnd, { type: "disconnected", reason: "user" }, "same"],
  ["nor does a late disconnect with an error",
    afterEnd, { type: "disconnected", reason: "error", message: "Connection closed" }, "same"],
  ["nor late words of that call",
    afterEnd, { type: "userSaid", text: "Hello?" }, "same"],
  ["nor the agent's",
    afterEnd, { type: "agentSaid" }, "same"],
  ["nor its errors",
    afterEnd, { type: "serviceError", message: "Server error" }, "same"],
  ["End conversation: not connected, and nothing left to say",
    { ...awaiting, notice: MID_CALL_PROBLEM, tentative: "so" }, { type: "ended" },
    at({ attempts: 1, session: SESSION })],
  ["End while connecting lets the attempt go",
    connecting, { type: "ended" }, at({ attempts: 1 })],
  ["moving on to typing takes a failure and its Try again away",
    { ...failed, notice: AGENT_ENDED }, { type: "dismissed" }, at({ attempts: 1, session: SESSION })],
  ["moving on to typing mid-call takes only the notice",
    { ...live, notice: MID_CALL_PROBLEM }, { type: "dismissed" }, live],

  // reconnecting after missed heartbeats
  ["the watchdog finds the live connection dead: reconnecting",
    awaiting, { type: "connectionDied" }, { ...awaiting, phase: "reconnecting" }],
  ["the dead conversation's own disconnect, before the new attempt opens",
    { ...dying, awaitingAgent: true, tentative: "so" }, { type: "disconnected", reason: "user" },
    at({ attempts: 1, session: SESSION })],
  ["the dead conversation's disconnect after the new attempt opened changes nothing",
    reopening, { type: "disconnected", reason: "user" }, "same"],
  ["nor do its errors",
    reopening, { type: "serviceError", message: "Connection closed" }, "same"],
  ["a dead connection is not reopened twice",
    reopening, { type: "connectionDied" }, "same"],
  ["nor one that is not live",
    starting, { type: "connectionDied" }, "same"],
  // rules pinned from a comparison of the old hook and the reducer (review)
  ["a connect clears a failure shown while the attempt ran",
    { ...starting, error: START_FAILED }, { type: "connected" },
    at({ phase: "connected", attempts: 1, session: SESSION })],
  ["a connect is taken even before the attempt has started the SDK (the SDK drops a stale one itself)",
    connecting, { type: "connected" }, at({ phase: "connected", attempts: 1 })],
  ["tentative words are shown even before the attempt has started the SDK",
    reopening, { type: "heard", text: "what is" }, { ...reopening, tentative: "what is" }],
  ["dismissing a lost connection goes back to idle",
    lost, { type: "dismissed" }, at({ phase: "idle", attempts: 2, session: SECOND })],
  ["a service error once the connection is lost changes nothing",
    lost, { type: "serviceError", message: "boom" }, "same"],
  ["an old attempt's deadline while a newer attempt runs changes nothing",
    reopened, { type: "gaveUp", attempt: 1 }, "same"],
];

describe("the voice session's reducer", () => {
  it.each(ROWS)("%s", (_name, state, event, expected) => {
    const next = reduce(state, event);
    if (expected === "same") expect(next).toBe(state);
    else expect(next).toEqual(expected);
  });

  it("never changes the state it is given", () => {
    for (const [, state, event] of ROWS) {
      const before = structuredClone(state);
      reduce(state, event);
      expect(state).toEqual(before);
    }
  });

  it("covers every event", () => {
    // A new event type fails to compile here until it is listed, and this test until a row uses it.
    const everyEvent: Record<VoiceEvent["type"], true> = {
      agentSaid: true, agentSpeaking: true, answerOverdue: true, connected: true, connectionDied: true,
      disconnected: true, dismissed: true, ended: true, failed: true, gaveUp: true, heard: true, muted: true,
      open: true, pageSaid: true, serviceError: true, sessionReady: true, userSaid: true,
    };
    const covered = new Set(ROWS.map(([, , event]) => event.type));
    expect([...covered].sort()).toEqual(Object.keys(everyEvent).sort());
  });
});

describe("the voice session, event by event", () => {
  const run = (events: VoiceEvent[], from = initialVoiceState) => events.reduce(reduce, from);

  it("a call ended, Start again, and the ended call's disconnect arriving late: the new call goes on", () => {
    const ended = run([{ type: "open", resume: false }, { type: "sessionReady", attempt: 1, session: SESSION },
                       { type: "connected" }, { type: "userSaid", text: "Hello?" }, { type: "ended" }]);
    expect(ended).toMatchObject({ phase: "idle", awaitingAgent: false });
    const next = run([{ type: "open", resume: false }, { type: "disconnected", reason: "user" }], ended);
    expect(next).toMatchObject({ phase: "connecting", attempt: { id: 2, started: false } });
    const again = run([{ type: "sessionReady", attempt: 2, session: SECOND }, { type: "connected" }], next);
    expect(again).toEqual(at({ phase: "connected", attempts: 2, session: SECOND }));
  });

  it("a connection that dies without a word, reopened; the reconnect never gets through; Try again", () => {
    const dead = run([{ type: "open", resume: false }, { type: "sessionReady", attempt: 1, session: SESSION },
                      { type: "connected" }, { type: "muted", muted: true }, { type: "connectionDied" },
                      { type: "disconnected", reason: "user" }, { type: "open", resume: true },
                      { type: "sessionReady", attempt: 2, session: SECOND }, { type: "gaveUp", attempt: 2 },
                      { type: "disconnected", reason: "user" }]);
    expect(dead).toEqual(at({ phase: "lost", attempts: 2, session: SECOND, error: CONNECTION_LOST, muted: true }));
    const again = run([{ type: "open", resume: false }, { type: "sessionReady", attempt: 3, session: SESSION },
                       { type: "connected" }], dead);
    expect(again).toEqual(at({ phase: "connected", attempts: 3, session: SESSION, muted: true }));
  });
});
