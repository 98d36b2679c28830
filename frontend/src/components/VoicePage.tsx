import { useCallback, useEffect, useRef, useState } from "react";

import type { Transport } from "../lib/api";
import { captureScreen } from "../lib/capture";
import type { Picture } from "../lib/pictures";
import { useStoredFlag } from "../lib/settings";
import { useAudioLevels } from "../lib/useAudioLevels";
import { usePageImageInput } from "../lib/usePageImageInput";
import { usePictures } from "../lib/usePictures";
import { useReactToPictures } from "../lib/useReactToPictures";
import { isLive, useVoiceSession } from "../lib/useVoiceSession";
import { CameraDialog } from "./CameraDialog";
import { ControlBar } from "./ControlBar";
import { PictureStrip } from "./PictureStrip";
import { Stage } from "./Stage";
import { StatusIndicator } from "./StatusIndicator";
import { Transcript } from "./Transcript";

export const REACT_TO_PICTURES_KEY = "glimpse.reactToPictures";

/** Leaving or reloading mid-call ends the conversation: the browser asks first. */
function useLeaveWarning(live: boolean) {
  useEffect(() => {
    if (!live) return;
    const warn = (event: BeforeUnloadEvent) => {
      event.preventDefault();
      event.returnValue = ""; // older browsers show their prompt only with returnValue set
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [live]);
}

export function VoicePage({ transport }: { transport: Transport }) {
  const voice = useVoiceSession(transport);
  const live = isLive(voice.status);
  const [reactToPictures, setReactToPictures] = useStoredFlag(REACT_TO_PICTURES_KEY, true);
  const [cameraOpen, setCameraOpen] = useState(false);
  const [captureError, setCaptureError] = useState<string | null>(null);
  const cameraOpener = useRef<HTMLElement | null>(null);
  const bars = useRef<HTMLDivElement>(null);
  const meter = useRef<HTMLSpanElement>(null);

  // Pictures go to a conversation that is on; between conversations they wait for the next one.
  const arrived = useRef(() => {});
  const pictures = usePictures(live ? voice.session : null, {
    limit: voice.session?.max_images, currentTurn: voice.currentTurn, onFirstUpload: () => arrived.current(),
  });
  arrived.current = useReactToPictures({
    enabled: reactToPictures, status: voice.status, busy: pictures.busy, turn: voice.turns.started, say: voice.say,
  });

  const dragging = usePageImageInput(pictures.add);
  useLeaveWarning(live);
  useAudioLevels(live, voice.status, voice.levels, { bars, meter });

  // Seen: a turn that began after the upload completed has been answered (with the proxy's default sticky
  // policy every picture stays in view of the agent from then on).
  const answered = voice.turns.answered;
  const isSeen = useCallback(
    (picture: Picture) => picture.state === "uploaded" && picture.uploadedTurn !== undefined
      && answered > picture.uploadedTurn,
    [answered],
  );

  const openCamera = () => {
    cameraOpener.current = document.activeElement as HTMLElement | null;
    setCaptureError(null);
    setCameraOpen(true);
  };
  const closeCamera = () => {
    setCameraOpen(false);
    cameraOpener.current?.focus();
  };
  const shareScreen = async () => {
    setCaptureError(null);
    try {
      const still = await captureScreen();
      if (still) pictures.add([still]);
    } catch (problem) {
      setCaptureError(problem instanceof Error ? problem.message : "The screen could not be shared.");
    }
  };

  const alert = voice.error ?? voice.notice ?? captureError;
  return (
    <>
      <div className="app" inert={cameraOpen || undefined}>
        <header className="app-header">
          <h1>Glimpse</h1>
          <StatusIndicator status={voice.status} />
        </header>
        <ControlBar
          status={voice.status}
          isMuted={voice.isMuted}
          meter={meter}
          onConnect={voice.connect}
          onDisconnect={voice.disconnect}
          onMutedChange={voice.setMuted}
          onFiles={pictures.add}
          onOpenCamera={openCamera}
          onShareScreen={shareScreen}
        />
        <main className="app-main">
          <Stage status={voice.status} bars={bars} tentative={voice.tentative} />
          {alert && (
            <p className={voice.error ? "banner banner-error" : "banner"} role="alert">
              {alert}
            </p>
          )}
          <Transcript entries={voice.transcript} />
          <PictureStrip
            pictures={pictures.pictures}
            count={pictures.count}
            limit={pictures.limit}
            message={pictures.message}
            isSeen={isSeen}
            live={live}
            dragging={dragging}
            reactToPictures={reactToPictures}
            onReactToPicturesChange={setReactToPictures}
            onRemove={pictures.remove}
          />
        </main>
      </div>
      {cameraOpen && <CameraDialog onPhoto={(file) => pictures.add([file])} onClose={closeCamera} />}
    </>
  );
}
