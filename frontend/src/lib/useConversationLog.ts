// What has been said, by voice or typed, and the turn counter the pictures are measured by: one log for the page,
// written by whichever way the person is talking.
//
// Turns: `started` moves when the person's turn reaches the agent (their words, or a message the page sends for
// them); `answered` catches up when the agent answers it. A picture uploaded at turn N is seen once answered > N.
import { useCallback, useMemo, useRef, useState } from "react";

export interface TranscriptEntry {
  id: number;
  role: "user" | "agent";
  text: string;
  /** The agent's words are still arriving. */
  streaming?: boolean;
}

export interface Turns {
  started: number;
  answered: number;
}

export function useConversationLog() {
  const [transcript, setTranscript] = useState<TranscriptEntry[]>([]);
  const [turns, setTurns] = useState<Turns>({ started: 0, answered: 0 });
  const entriesRef = useRef<TranscriptEntry[]>([]);
  const turnsRef = useRef<Turns>({ started: 0, answered: 0 });
  const nextId = useRef(0);

  const change = useCallback((next: TranscriptEntry[]) => {
    entriesRef.current = next;
    setTranscript(next);
  }, []);

  const add = useCallback((role: TranscriptEntry["role"], text: string, streaming = false): number => {
    const id = nextId.current++;
    change([...entriesRef.current, streaming ? { id, role, text, streaming } : { id, role, text }]);
    return id;
  }, [change]);

  /** More words for an entry (a streamed answer). */
  const append = useCallback((id: number, text: string) => {
    change(entriesRef.current.map((entry) => (entry.id === id ? { ...entry, text: entry.text + text } : entry)));
  }, [change]);

  /** The entry's words are all in. */
  const finish = useCallback((id: number) => {
    change(entriesRef.current.map((entry) => (entry.id === id && entry.streaming ? { id, role: entry.role,
                                                                                     text: entry.text } : entry)));
  }, [change]);

  const edit = useCallback((update: (entries: TranscriptEntry[]) => TranscriptEntry[]) => {
    change(update(entriesRef.current));
  }, [change]);

  const clear = useCallback(() => change([]), [change]);

  const turnStarted = useCallback(() => {
    turnsRef.current = { ...turnsRef.current, started: turnsRef.current.started + 1 };
    setTurns(turnsRef.current);
  }, []);

  const turnAnswered = useCallback(() => {
    if (turnsRef.current.answered === turnsRef.current.started) return;
    turnsRef.current = { ...turnsRef.current, answered: turnsRef.current.started };
    setTurns(turnsRef.current);
  }, []);

  const currentTurn = useCallback(() => turnsRef.current.started, []);
  /** The entries as they are now, for a request built between renders. */
  const entries = useCallback(() => entriesRef.current, []);

  const actions = useMemo(
    () => ({ add, append, finish, edit, clear, turnStarted, turnAnswered, currentTurn, entries }),
    [add, append, finish, edit, clear, turnStarted, turnAnswered, currentTurn, entries],
  );
  return { transcript, turns, ...actions };
}

export type ConversationLog = Omit<ReturnType<typeof useConversationLog>, "transcript" | "turns">;
