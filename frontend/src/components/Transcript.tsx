// Both sides of the conversation in a box of its own: it scrolls, the page never does. New lines (and a typed
// answer's words as they stream in) bring it to the bottom only when the person was already there, so reading back
// is never interrupted. An answer still streaming is marked busy, so a screen reader reads it once it is whole.
import { useEffect, useLayoutEffect, useRef } from "react";

import type { TranscriptEntry } from "../lib/useConversationLog";

const NEAR_BOTTOM_PX = 48;

export function Transcript({ entries }: { entries: TranscriptEntry[] }) {
  const box = useRef<HTMLElement>(null);
  const atBottom = useRef(true);

  const onScroll = () => {
    const element = box.current;
    if (element) atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_BOTTOM_PX;
  };

  useLayoutEffect(() => {
    const element = box.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  }, [entries]);

  // The box itself shrinks (the text box above the controls grows a line): the bottom stays in view.
  useEffect(() => {
    const element = box.current;
    if (!element || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      if (atBottom.current) element.scrollTop = element.scrollHeight;
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  return (
    // Focusable, so the transcript can be scrolled from the keyboard.
    <section ref={box} className="transcript" aria-labelledby="transcript-heading" tabIndex={0} onScroll={onScroll}
             data-testid="transcript">
      <h2 id="transcript-heading" className="visually-hidden">Transcript</h2>
      {entries.length === 0 ? (
        <p className="hint">What you and the agent say appears here.</p>
      ) : (
        <ol className="transcript-list" aria-live="polite">
          {entries.map((entry) => (
            <li key={entry.id} className={`turn turn-${entry.role}`} data-role={entry.role}
                aria-busy={entry.streaming || undefined}>
              <span className="turn-speaker">{entry.role === "user" ? "You" : "Agent"}</span>
              <span className="turn-text">{entry.text}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
