// Both sides of the conversation in a box of its own: it scrolls, the page never does. New lines bring it to
// the bottom only when the person was already there, so reading back is never interrupted.
import { useLayoutEffect, useRef } from "react";

import type { TranscriptEntry } from "../lib/useVoiceSession";

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
            <li key={entry.id} className={`turn turn-${entry.role}`} data-role={entry.role}>
              <span className="turn-speaker">{entry.role === "user" ? "You" : "Agent"}</span>
              <span className="turn-text">{entry.text}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
