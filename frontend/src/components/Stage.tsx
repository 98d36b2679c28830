// The visual centre: bars that move with whoever is talking, and a line saying what is going on. Before a
// conversation it says what the agent can do and where voice and pictures go.
import type { RefObject } from "react";

import { BAR_COUNT } from "../lib/useAudioLevels";
import type { VoiceStatus } from "../lib/useVoiceSession";

const CAPTIONS: Partial<Record<VoiceStatus, string>> = {
  connecting: "Connecting to the agent…",
  listening: "Go ahead, the agent is listening.",
  thinking: "The agent is thinking…",
  speaking: "The agent is speaking. Talk to interrupt.",
  muted: "Your microphone is off. Unmute to talk.",
  reconnecting: "The connection dropped. Reconnecting — your transcript and pictures are kept.",
};

interface Props {
  status: VoiceStatus;
  bars: RefObject<HTMLDivElement | null>;
  /** What the person is saying, before the service has settled on it. */
  tentative: string | null;
}

export function Stage({ status, bars, tentative }: Props) {
  const idle = status === "idle" || status === "error" || status === "lost";
  return (
    <section className={`stage stage-${status}`} aria-label="Agent">
      <div className="visualiser" ref={bars} aria-hidden="true">
        {Array.from({ length: BAR_COUNT }, (_, index) => <span key={index} />)}
      </div>
      {idle ? (
        <div className="intro">
          <p>Talk with an agent that can see: show it a photo, your camera or your screen, and ask about it.</p>
          <p className="privacy">
            Your voice and the pictures you share go to ElevenLabs and to the AI model provider so the agent can
            answer.
          </p>
        </div>
      ) : (
        <p className="stage-caption">
          {tentative ? <q className="tentative">{tentative}</q> : CAPTIONS[status]}
        </p>
      )}
    </section>
  );
}
