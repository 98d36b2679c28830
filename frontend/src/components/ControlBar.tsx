// The controls, always in reach: a bar floating at the bottom of the screen (above the home indicator on
// phones). Start or End, Mute with a live microphone meter, the ways to show the agent something, and Type instead.
// Without voice on the server there is no Start: the text box above the bar is the way in.
import { useId, type ChangeEvent, type RefObject } from "react";

import { canShareScreen } from "../lib/capture";
import { PICKER_ACCEPT } from "../lib/imageFiles";
import { filesFrom } from "../lib/usePageImageInput";
import { isLive, type VoiceStatus } from "../lib/voice/status";
import { Icon } from "./Icon";

interface Props {
  status: VoiceStatus;
  /** The server has voice: Start, End and Mute are offered, and typing is an option (Type instead). */
  voice: boolean;
  typing: boolean;
  onTypingChange: (typing: boolean) => void;
  isMuted: boolean;
  meter: RefObject<HTMLSpanElement | null>;
  onConnect: () => void;
  onDisconnect: () => void;
  onMutedChange: (muted: boolean) => void;
  onFiles: (files: File[]) => void;
  onOpenCamera: () => void;
  onShareScreen: () => void;
}

export function ControlBar({ status, voice, typing, onTypingChange, isMuted, meter, onConnect, onDisconnect,
                             onMutedChange, onFiles, onOpenCamera, onShareScreen }: Props) {
  const live = isLive(status);
  const busy = status === "connecting" || status === "reconnecting";
  const retry = status === "error" || status === "lost";
  const pickerId = useId();
  const cameraId = useId();

  const fromInput = (event: ChangeEvent<HTMLInputElement>) => {
    const chosen = filesFrom(event.target.files);
    event.target.value = ""; // choosing the same file again still fires change
    if (chosen.length) onFiles(chosen);
  };

  return (
    <nav className="control-bar" aria-label="Conversation controls">
      {live || busy ? (
        <button type="button" className="control control-end" onClick={onDisconnect}
                aria-label={busy ? undefined : "End conversation"}>
          <Icon name="close" />
          {busy ? "Cancel" : "End"}
        </button>
      ) : voice && (
        // A narrow phone shows "Start" (CSS hides the rest); the name stays "Start conversation".
        <button type="button" className="control control-start" onClick={onConnect}
                aria-label={retry ? undefined : "Start conversation"}>
          <Icon name="mic" />
          {retry ? "Try again" : <>Start<span className="start-more"> conversation</span></>}
        </button>
      )}
      {live && (
        <button type="button" className="control control-mute" aria-pressed={isMuted}
                title={isMuted ? "Microphone off" : "Mute microphone"} onClick={() => onMutedChange(!isMuted)}>
          <span className="mic-meter" aria-hidden="true">
            <span ref={meter} />
          </span>
          <Icon name={isMuted ? "micOff" : "mic"} />
          <span className="control-label">Mute microphone</span>
        </button>
      )}
      <span className="control-group">
        <input id={pickerId} className="visually-hidden" type="file" accept={PICKER_ACCEPT} multiple
               onChange={fromInput} data-testid="image-picker" />
        <label htmlFor={pickerId} className="control" title="Choose pictures">
          <Icon name="image" />
          <span className="control-label">Choose pictures</span>
        </label>
      </span>
      {/* A phone opens its own camera app; a computer shows the webcam here. CSS shows the one that fits. */}
      <span className="control-group phone-only">
        <input id={cameraId} className="visually-hidden" type="file" accept={PICKER_ACCEPT} capture="environment"
               onChange={fromInput} />
        <label htmlFor={cameraId} className="control" title="Take a photo">
          <Icon name="camera" />
          <span className="control-label">Take a photo</span>
        </label>
      </span>
      <button type="button" className="control desktop-only" title="Take a photo" onClick={onOpenCamera}>
        <Icon name="camera" />
        <span className="control-label">Take a photo</span>
      </button>
      {canShareScreen() && (
        <button type="button" className="control desktop-only" title="Share a still of your screen"
                onClick={onShareScreen}>
          <Icon name="screen" />
          <span className="control-label">Share screen</span>
        </button>
      )}
      {voice && (
        <button type="button" className="control" aria-pressed={typing} title="Type instead"
                onClick={() => onTypingChange(!typing)}>
          <Icon name="keyboard" />
          <span className="control-label">Type instead</span>
        </button>
      )}
    </nav>
  );
}
