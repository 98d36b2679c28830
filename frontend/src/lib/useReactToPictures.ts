// React at once: a picture shared during a live call (or in a typed conversation) starts a turn of its own, so the
// agent answers it without waiting for the person to speak (the proxy attaches pending pictures to a turn whose last
// message is the user's, and a user message is one; a contextual update starts no turn).
//
// - One turn per batch: pictures finishing together (or queued behind each other) start ONE turn, once nothing
//   is left to upload.
// - Never over the agent: while it speaks, or is still answering the person (or the person's typed message is on its
//   way, waiting for the pictures), the turn waits until it is done. A
//   person showing something mid-sentence expects the agent to finish its thought, then turn to the picture; cutting
//   it off would lose what it was saying, and the picture is not going anywhere.
// - The person spoke first: their own turn carries the picture, so the page says nothing for them.
import { useCallback, useEffect, useRef, useState } from "react";

/** A pause for pictures finishing together to gather into one turn. */
export const SETTLE_MS = 150;

export function reactionText(count: number): string {
  return count === 1 ? "I'm showing you a picture." : `I'm showing you ${count} pictures.`;
}

interface Options {
  enabled: boolean;
  /** A conversation is on that pictures reach: a live call, or typing. */
  active: boolean;
  /** The agent is speaking or answering, or a turn of the person's is on its way: not now. */
  agentBusy: boolean;
  /** Pictures are still being prepared or uploaded. */
  busy: boolean;
  /** The turn counter: it moves when the person's turn reaches the agent (or the page speaks for them). */
  turn: number;
  say: (text: string) => boolean;
}

/** Returns the function to call when a picture's first upload has completed. */
export function useReactToPictures({ enabled, active, agentBusy, busy, turn, say }: Options): () => void {
  const pending = useRef<{ count: number; sinceTurn: number } | null>(null);
  const [arrivals, setArrivals] = useState(0);
  const latest = useRef({ enabled, active, turn });
  latest.current = { enabled, active, turn };

  const pictureArrived = useCallback(() => {
    const { enabled: on, active: now, turn: current } = latest.current;
    if (!on || !now) return;
    pending.current = { count: (pending.current?.count ?? 0) + 1, sinceTurn: pending.current?.sinceTurn ?? current };
    setArrivals((count) => count + 1);
  }, []);

  useEffect(() => {
    const waiting = pending.current;
    if (!waiting) return;
    if (!enabled || !active || turn > waiting.sinceTurn) {
      pending.current = null;
      return;
    }
    if (busy || agentBusy) return;
    const timer = setTimeout(() => {
      const ready = pending.current;
      pending.current = null;
      if (ready) say(reactionText(ready.count));
    }, SETTLE_MS);
    return () => clearTimeout(timer);
  }, [arrivals, enabled, active, agentBusy, busy, turn, say]);

  return pictureArrived;
}
