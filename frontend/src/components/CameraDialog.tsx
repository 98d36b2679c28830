// Taking a photo with a computer's camera: a live preview to aim with, one frame kept, the camera off again.
import { useEffect, useId, useRef, useState } from "react";

import { describeCameraFailure, firstFrame, frameToFile, photoName, stopStream } from "../lib/capture";

interface Props {
  onPhoto: (file: File) => void;
  onClose: () => void;
}

export function CameraDialog({ onPhoto, onClose }: Props) {
  const video = useRef<HTMLVideoElement>(null);
  const capture = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const [ready, setReady] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const titleId = useId();

  useEffect(() => {
    let stream: MediaStream | null = null;
    let cancelled = false;
    cancel.current?.focus();
    (async () => {
      try {
        const opened = await navigator.mediaDevices.getUserMedia({
          video: { facingMode: "environment", width: { ideal: 1920 }, height: { ideal: 1080 } }, audio: false });
        if (cancelled) return stopStream(opened);
        stream = opened;
        if (!video.current) return;
        video.current.srcObject = opened;
        await firstFrame(video.current);
        if (cancelled) return;
        setReady(true);
        capture.current?.focus();
      } catch (problem) {
        if (!cancelled) setError(describeCameraFailure(problem));
      }
    })();
    return () => {
      cancelled = true;
      stopStream(stream);
    };
  }, []);

  const take = async () => {
    if (!video.current) return;
    try {
      onPhoto(await frameToFile(video.current, photoName()));
      onClose();
    } catch {
      setError("The camera gave no picture. Try again.");
    }
  };

  return (
    <div className="dialog-backdrop">
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby={titleId}
           onKeyDown={(event) => event.key === "Escape" && onClose()}>
        <h2 id={titleId}>Take a photo</h2>
        <video ref={video} className="camera-preview" muted playsInline aria-label="Camera preview" />
        {error && <p className="error" role="alert">{error}</p>}
        <div className="dialog-buttons">
          <button type="button" className="button button-primary" ref={capture} disabled={!ready} onClick={take}>
            Capture photo
          </button>
          <button type="button" className="button" ref={cancel} onClick={onClose}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}
