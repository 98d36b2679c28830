import { isLive, type VoiceStatus } from "../lib/useVoiceSession";

interface Props {
  status: VoiceStatus;
  error: string | null;
  isMuted: boolean;
  onConnect: () => void;
  onDisconnect: () => void;
  onMutedChange: (muted: boolean) => void;
}

export function ConnectionControls({ status, error, isMuted, onConnect, onDisconnect, onMutedChange }: Props) {
  const live = isLive(status);
  const busy = status === "connecting";
  return (
    <section className="controls" aria-label="Conversation">
      {live || busy ? (
        <button type="button" className="button button-stop" onClick={onDisconnect}>
          {busy ? "Cancel" : "End conversation"}
        </button>
      ) : (
        <button type="button" className="button button-start" onClick={onConnect}>
          {status === "error" ? "Try again" : "Start conversation"}
        </button>
      )}
      {live && (
        <button type="button" className="button button-quiet" aria-pressed={isMuted}
                onClick={() => onMutedChange(!isMuted)}>
          {isMuted ? "Unmute microphone" : "Mute microphone"}
        </button>
      )}
      {status === "idle" && !error && (
        <p className="hint">Press Start and allow the microphone, then talk. Share a picture any time.</p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
