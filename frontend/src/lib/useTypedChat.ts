// A typed conversation, for when there is no voice (no ElevenLabs agent on the server) or the person would rather
// type: a Glimpse session of its own (fetched when the first picture or message needs it), and each message a
// streamed turn of the proxy's chat endpoint (see chat.ts).
//
// - A message waits for the pictures shown before it to finish uploading, so it carries them (the proxy attaches
//   pending pictures to the next turn whose last message is the person's); its turn starts once it is sent.
// - One turn at a time: a new message stops the answer under way (what had come stays in the transcript);
//   unmounting stops it too.
// - The session is fetched at most once at a time, and again when its upload token is about to expire.
import { useCallback, useEffect, useRef, useState } from "react";

import { ApiError, fetchSession, type GlimpseSession, type Transport } from "./api";
import { ChatError, type ChatMessage, streamChat, SYSTEM_PROMPT } from "./chat";
import { NO_ANSWER } from "./plainWords";
import type { ConversationLog } from "./useConversationLog";
import { ANSWER_TIMEOUT_MS } from "./useVoiceSession";

/** What a typed turn is doing: nothing, waiting for the first words, or reading them in. */
export type TypedState = "ready" | "thinking" | "answering";

/** A session whose upload token expires sooner than this is replaced before it is used. */
const TOKEN_MARGIN_MS = 60_000;

interface Options {
  transport: Transport;
  log: ConversationLog;
  /** Resolves once every picture is in the session; rejects on abort. */
  settled: (sessionId: string, signal: AbortSignal) => Promise<void>;
  /** Every session the server hands out. */
  onSession: (session: GlimpseSession) => void;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new DOMException("Aborted", "AbortError"));
  return new Promise((resolve, reject) => {
    const aborted = () => reject(new DOMException("Aborted", "AbortError"));
    signal.addEventListener("abort", aborted, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}

const NOT_SENT = "The message could not be sent. Try again.";

/** ApiError and ChatError carry words fit to show; anything else is the page's own failure. */
function wordsFor(problem: unknown): string {
  return problem instanceof ApiError || problem instanceof ChatError ? problem.message : NOT_SENT;
}

function usable(session: GlimpseSession | null): session is GlimpseSession {
  return session !== null && session.upload_token_expires_at * 1000 - Date.now() > TOKEN_MARGIN_MS;
}

export function useTypedChat({ transport, log, settled, onSession }: Options) {
  const [session, setSession] = useState<GlimpseSession | null>(null);
  const [state, setState] = useState<TypedState>("ready");
  const [error, setError] = useState<string | null>(null);
  const sessionRef = useRef<GlimpseSession | null>(null);
  const fetching = useRef<{ promise: Promise<GlimpseSession>; controller: AbortController } | null>(null);
  const turn = useRef<AbortController | null>(null);
  const latest = useRef({ transport, log, settled, onSession });
  latest.current = { transport, log, settled, onSession };

  const ensureSession = useCallback((): Promise<GlimpseSession> => {
    if (usable(sessionRef.current)) return Promise.resolve(sessionRef.current);
    if (fetching.current) return fetching.current.promise;
    const controller = new AbortController();
    const done = () => {
      if (fetching.current?.controller === controller) fetching.current = null;
    };
    const promise = fetchSession(latest.current.transport, controller.signal, { voice: false }).then((fresh) => {
      done();
      if (controller.signal.aborted) throw new DOMException("Aborted", "AbortError");
      sessionRef.current = fresh;
      setSession(fresh);
      latest.current.onSession(fresh);
      return fresh;
    }, (problem: unknown) => {
      done();
      throw problem;
    });
    fetching.current = { promise, controller };
    return promise;
  }, []);

  /** A session now (pictures are waiting for one); a failure is shown. */
  const prepare = useCallback(() => {
    ensureSession().catch((problem: unknown) => {
      if (problem instanceof DOMException && problem.name === "AbortError") return;
      setError(wordsFor(problem));
    });
  }, [ensureSession]);

  /** Whether the server has voice, asked once when the page opens; nothing is shown if it does not answer. */
  const probe = useCallback(() => {
    ensureSession().catch(() => undefined);
  }, [ensureSession]);

  const run = useCallback(async (controller: AbortController) => {
    const { signal } = controller;
    const { log: conversation } = latest.current;
    let answerId: number | null = null;
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const current = await abortable(ensureSession(), signal);
      await latest.current.settled(current.session_id, signal);
      if (signal.aborted) return;
      const history: ChatMessage[] = conversation.entries()
        .filter((entry) => entry.text.trim())
        .map((entry) => ({ role: entry.role === "user" ? "user" : "assistant", content: entry.text }));
      conversation.turnStarted();
      timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, ANSWER_TIMEOUT_MS);
      await streamChat({
        session: current,
        messages: [{ role: "system", content: SYSTEM_PROMPT }, ...history],
        signal,
        onDelta: (text) => {
          if (answerId === null) {
            clearTimeout(timer);
            answerId = conversation.add("agent", text, true);
            conversation.turnAnswered();
            setState("answering");
          } else {
            conversation.append(answerId, text);
          }
        },
      });
      if (answerId === null) setError(NO_ANSWER);
    } catch (problem) {
      if (timedOut) setError(NO_ANSWER);
      else if (signal.aborted) return; // a newer message took over, or the page is gone
      else setError(wordsFor(problem));
    } finally {
      clearTimeout(timer);
      if (answerId !== null) conversation.finish(answerId);
      if (turn.current === controller) {
        turn.current = null;
        setState("ready");
      }
    }
  }, [ensureSession]);

  /** Sends a message as the person's turn. False when there is nothing to send. */
  const send = useCallback((text: string): boolean => {
    const words = text.trim();
    if (!words) return false;
    turn.current?.abort();
    const controller = new AbortController();
    turn.current = controller;
    latest.current.log.add("user", words);
    setError(null);
    setState("thinking");
    void run(controller);
    return true;
  }, [run]);

  /** Voice takes over: the turn under way stops, and the next typed message gets a session of its own. */
  const leave = useCallback(() => {
    turn.current?.abort();
    turn.current = null;
    fetching.current?.controller.abort();
    fetching.current = null;
    sessionRef.current = null;
    setSession(null);
    setState("ready");
    setError(null);
  }, []);

  const dismiss = useCallback(() => setError(null), []);

  useEffect(() => () => {
    turn.current?.abort();
    turn.current = null;
    fetching.current?.controller.abort();
    fetching.current = null;
  }, []);

  return { session, state, error, send, prepare, probe, leave, dismiss };
}
