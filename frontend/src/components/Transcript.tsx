import { useEffect, useRef } from "react";

import type { TranscriptEntry } from "../lib/useVoiceSession";

export function Transcript({ entries, agentSpeaking }: { entries: TranscriptEntry[]; agentSpeaking: boolean }) {
  const end = useRef<HTMLLIElement>(null);
  useEffect(() => {
    end.current?.scrollIntoView?.({ block: "end", behavior: "smooth" });
  }, [entries.length]);

  return (
    <section className="transcript" aria-labelledby="transcript-heading">
      <h2 id="transcript-heading">Transcript</h2>
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
          <li ref={end} className="transcript-end" aria-hidden="true" />
        </ol>
      )}
      {agentSpeaking && <p className="speaking-note">The agent is speaking…</p>}
    </section>
  );
}
