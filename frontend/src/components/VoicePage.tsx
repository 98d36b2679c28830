// The page: one conversation with an agent that sees, by voice when the server has an ElevenLabs agent, typed when
// it has none or the person would rather type (Type instead). Voice and typing write one transcript and share the
// pictures; pictures go to whichever conversation is on (a live call's session, or the typed conversation's).
import { useCallback, useEffect, useRef, useState } from "react";

import { type GlimpseSession, hasVoice, type Transport } from "../lib/api";
import { captureScreen } from "../lib/capture";
import type { Picture } from "../lib/pictures";
import { rememberedVoice, rememberVoice, useStoredFlag } from "../lib/settings";
import { useAudioLevels } from "../lib/useAudioLevels";
import { useConversationLog } from "../lib/useConversationLog";
import { usePageImageInput } from "../lib/usePageImageInput";
import { usePictures } from "../lib/usePictures";
import { useReactToPictures } from "../lib/useReactToPictures";
import { useTypedChat } from "../lib/useTypedChat";
import { useVoiceSession } from "../lib/useVoiceSession";
import { isLive } from "../lib/voice/status";
import { CameraDialog } from "./CameraDialog";
import { Composer } from "./Composer";
import { ControlBar } from "./ControlBar";
import { PictureStrip } from "./PictureStrip";
import { Stage } from "./Stage";
import { type PageStatus, StatusIndicator } from "./StatusIndicator";
import { Transcript } from "./Transcript";

export const REACT_TO_PICTURES_KEY = "glimpse.reactToPictures";
export const DEMO_NOTE = "Demo mode: answers come from a built-in demo model that measures pictures; it does not "
  + "understand them. Configure an LLM for real answers.";

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
  const log = useConversationLog();
  // Whether the server has voice: remembered from last time when it had, otherwise asked when the page opens.
  const [voiceAvailable, setVoiceAvailable] = useState<boolean | null>(rememberedVoice);
  const voiceKnown = useRef(voiceAvailable);
  const [demo, setDemo] = useState(false);
  const [typingChosen, setTypingChosen] = useState(false);
  const [draft, setDraft] = useState("");
  const composerInput = useRef<HTMLTextAreaElement>(null);
  const focusComposer = useRef(false);
  const midTyping = useRef((): boolean => false);
  midTyping.current = () => draft.trim() !== "" || log.entries().length > 0
    || (composerInput.current !== null && document.activeElement === composerInput.current);

  const learn = useCallback((session: GlimpseSession) => {
    const voiceNow = hasVoice(session);
    rememberVoice(voiceNow);
    setDemo(session.demo_model === true);
    // Voice turned out to be there while the person was already typing: the text box stays.
    if (voiceNow && voiceKnown.current !== true && midTyping.current()) setTypingChosen(true);
    voiceKnown.current = voiceNow;
    setVoiceAvailable(voiceNow);
  }, []);

  const voice = useVoiceSession(transport, log, { onSession: learn });
  const live = isLive(voice.status);
  const engaged = live || voice.status === "connecting" || voice.status === "reconnecting";
  const composerOpen = voiceAvailable !== true || typingChosen;
  // Typed turns go to the proxy directly unless a call is on (then they go through the call).
  const typedMode = composerOpen && !engaged;

  const [reactToPictures, setReactToPictures] = useStoredFlag(REACT_TO_PICTURES_KEY, true);
  const [cameraOpen, setCameraOpen] = useState(false);
  const [captureError, setCaptureError] = useState<string | null>(null);
  const cameraOpener = useRef<HTMLElement | null>(null);
  const bars = useRef<HTMLDivElement>(null);
  const meter = useRef<HTMLSpanElement>(null);

  const picturesSettled = useRef((_sessionId: string, _signal: AbortSignal) => Promise.resolve());
  const typed = useTypedChat({
    transport, log, onSession: learn, settled: (sessionId, signal) => picturesSettled.current(sessionId, signal),
  });

  // Pictures go to a conversation that is on; between conversations they wait for the next one.
  const arrived = useRef(() => {});
  const pictures = usePictures(live ? voice.session : typedMode ? typed.session : null, {
    limit: (voice.session ?? typed.session)?.max_images, currentTurn: log.currentTurn,
    onFirstUpload: () => arrived.current(),
  });
  picturesSettled.current = pictures.settledFor;
  arrived.current = useReactToPictures({
    enabled: reactToPictures,
    active: live || typedMode,
    // mid-sentence (their words on screen) counts too: their own turn will carry the picture
    agentBusy: live ? voice.status === "speaking" || voice.status === "thinking" || voice.tentative !== null
      : typed.state !== "ready",
    busy: pictures.busy,
    turn: log.turns.started,
    say: live ? voice.say : typed.send,
  });

  const dragging = usePageImageInput(pictures.add);
  useLeaveWarning(live);
  useAudioLevels(live, voice.status, voice.levels, { bars, meter });

  // Is there voice? Asked once, a moment after the page opens (StrictMode's rehearsal mount asks nothing); the
  // answer is also the typed conversation's session. A server that had voice last time is not asked.
  const { probe, prepare, leave } = typed;
  useEffect(() => {
    if (voiceKnown.current === true) return;
    const timer = setTimeout(probe, 0);
    return () => clearTimeout(timer);
  }, [probe]);

  // Typing, with pictures waiting: they need a session now, so they are in place before the next message.
  const pictureCount = pictures.pictures.length;
  const needsSession = typedMode && pictureCount > 0 && !typed.session;
  useEffect(() => {
    if (needsSession) prepare();
  }, [needsSession, pictureCount, prepare]);

  // A call takes over: the typed turn stops, and typing after the call gets a session of its own.
  useEffect(() => {
    if (engaged) leave();
  }, [engaged, leave]);

  useEffect(() => {
    if (!composerOpen || !focusComposer.current) return;
    focusComposer.current = false;
    composerInput.current?.focus();
  }, [composerOpen]);

  const chooseTyping = (on: boolean) => {
    focusComposer.current = on;
    setTypingChosen(on);
  };

  const sendMessage = (text: string): boolean => {
    const words = text.trim();
    if (!words) return false;
    if (live) return voice.say(words); // the agent takes text through the call
    if (engaged) return false; // connecting: kept in the box until the call is on
    voice.dismiss();
    return typed.send(words);
  };

  // Seen: a turn that began after the upload completed has been answered (with the proxy's default sticky
  // policy every picture stays in view of the agent from then on).
  const answered = log.turns.answered;
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
  const closeCamera = () => setCameraOpen(false);
  // Focus goes back once the dialog is gone: while it is open the page behind it is inert and refuses focus.
  useEffect(() => {
    if (!cameraOpen) cameraOpener.current?.focus();
  }, [cameraOpen]);
  const shareScreen = async () => {
    setCaptureError(null);
    try {
      const still = await captureScreen();
      if (still) pictures.add([still]);
    } catch (problem) {
      setCaptureError(problem instanceof Error ? problem.message : "The screen could not be shared.");
    }
  };

  const status: PageStatus = typedMode ? (typed.state === "ready" ? "ready" : typed.state) : voice.status;
  const failure = typed.error ?? voice.error;
  const alert = failure ?? voice.notice ?? captureError;
  return (
    <>
      <div className="app" inert={cameraOpen || undefined}>
        <header className="app-header">
          <h1>Glimpse</h1>
          <StatusIndicator status={status} />
        </header>
        <div className={composerOpen ? "dock dock-typing" : "dock"}>
          {composerOpen && <Composer value={draft} onChange={setDraft} onSend={sendMessage} input={composerInput} />}
          <ControlBar
            status={voice.status}
            voice={voiceAvailable === true}
            typing={typingChosen}
            onTypingChange={chooseTyping}
            isMuted={voice.isMuted}
            meter={meter}
            onConnect={voice.connect}
            onDisconnect={voice.disconnect}
            onMutedChange={voice.setMuted}
            onFiles={pictures.add}
            onOpenCamera={openCamera}
            onShareScreen={shareScreen}
          />
        </div>
        <main className="app-main">
          <Stage status={status} bars={bars} tentative={voice.tentative} mode={typedMode ? "typed" : "voice"}
                 demo={demo} fresh={log.transcript.length === 0} />
          {demo && <p className="demo-note">{DEMO_NOTE}</p>}
          {alert && (
            <p className={failure ? "banner banner-error" : "banner"} role="alert">
              {alert}
            </p>
          )}
          <Transcript entries={log.transcript} />
          <PictureStrip
            pictures={pictures.pictures}
            count={pictures.count}
            limit={pictures.limit}
            message={pictures.message}
            isSeen={isSeen}
            live={live || typedMode}
            typed={!live}
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
