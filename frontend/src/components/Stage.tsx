// The visual centre: bars that move with whoever is talking, and a line saying what is going on. Before a
// conversation it says what the agent can do and where voice, messages and pictures go.
import type { RefObject } from "react";

import { BAR_COUNT } from "../lib/useAudioLevels";
import type { PageStatus } from "./StatusIndicator";

const CAPTIONS: Partial<Record<PageStatus, string>> = {
  connecting: "Connecting to the agent…",
  listening: "Go ahead, the agent is listening.",
  thinking: "The agent is thinking…",
  speaking: "The agent is speaking. Talk to interrupt.",
  muted: "Your microphone is off. Unmute to talk.",
  reconnecting: "The connection dropped. Reconnecting — your transcript and pictures are kept.",
  ready: "Type a message, or show the agent a picture.",
  answering: "The agent is answering…",
};

export const INTRO = {
  voice: "Talk with an agent that can see: show it a photo, your camera or your screen, and ask about it.",
  typed: "Chat with an agent that can see: show it a photo, your camera or your screen, and type a question about it.",
};

export const PRIVACY = {
  voice: "Your voice and the pictures you share go to ElevenLabs and to the AI model provider so the agent can answer.",
  typed: "Your messages and the pictures you share go to the AI model provider so the agent can answer.",
  demo: "Your messages and the pictures you share stay on this server.",
};

interface Props {
  status: PageStatus;
  bars: RefObject<HTMLDivElement | null>;
  /** What the person is saying, before the service has settled on it. */
  tentative: string | null;
  /** How the person talks to the agent here: by voice (Start conversation) or by typing. */
  mode: "voice" | "typed";
  /** The server answers with its built-in demo model. */
  demo: boolean;
  /** Nothing has been said yet. */
  fresh: boolean;
}

export function Stage({ status, bars, tentative, mode, demo, fresh }: Props) {
  const idle = status === "idle" || status === "error" || status === "lost" || (status === "ready" && fresh);
  const privacy = mode === "voice" ? PRIVACY.voice : demo ? PRIVACY.demo : PRIVACY.typed;
  return (
    <section className={`stage stage-${status}${mode === "typed" && !fresh ? " stage-typed" : ""}`} aria-label="Agent">
      <div className="visualiser" ref={bars} aria-hidden="true">
        {Array.from({ length: BAR_COUNT }, (_, index) => <span key={index} />)}
      </div>
      {idle ? (
        <div className="intro">
          <p>{INTRO[mode]}</p>
          <p className="privacy">{privacy}</p>
        </div>
      ) : (
        <p className="stage-caption">
          {tentative ? <q className="tentative">{tentative}</q> : CAPTIONS[status]}
        </p>
      )}
    </section>
  );
}
