// Two more ways to show the agent something on a desktop: a photo from the camera and a still of a screen or tab.
// Either is one frame drawn to a canvas and sent as a JPEG, like a downscaled photo.
import { fitWithin, JPEG_QUALITY } from "./downscale";

export function canShareScreen(): boolean {
  return typeof navigator.mediaDevices?.getDisplayMedia === "function";
}

export function stopStream(stream: MediaStream | null | undefined) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

function stamp(): string {
  const now = new Date();
  const pad = (value: number) => String(value).padStart(2, "0");
  return `${pad(now.getHours())}.${pad(now.getMinutes())}.${pad(now.getSeconds())}`;
}

export const photoName = () => `Photo ${stamp()}.jpg`;
export const screenName = () => `Screen ${stamp()}.jpg`;

/** Resolves once a playing video shows a real frame (a camera's first frames are often black). */
export async function firstFrame(video: HTMLVideoElement, timeoutMs = 5_000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no frame")), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const withFrame = video as HTMLVideoElement & { requestVideoFrameCallback?: (callback: () => void) => number };
    const ready = () => (withFrame.requestVideoFrameCallback ? withFrame.requestVideoFrameCallback(done) : done());
    if (video.readyState >= 2) ready();
    else video.addEventListener("loadeddata", ready, { once: true });
    void video.play()?.catch(() => undefined);
  });
}

/** The video's current frame as a JPEG file, at most MAX_EDGE pixels on its long side. */
export async function frameToFile(video: HTMLVideoElement, name: string): Promise<File> {
  const size = fitWithin({ width: video.videoWidth, height: video.videoHeight });
  const canvas = document.createElement("canvas");
  canvas.width = size.width;
  canvas.height = size.height;
  const context = canvas.getContext("2d");
  if (!size.width || !size.height || !context) throw new Error("no frame");
  context.drawImage(video, 0, 0, size.width, size.height);
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  if (!blob) throw new Error("no frame");
  return new File([blob], name, { type: "image/jpeg" });
}

/** A still of the screen, window or tab the person picks; the capture stops at once. Null if they cancel. */
export async function captureScreen(): Promise<File | null> {
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  } catch (error) {
    if (error instanceof DOMException && error.name === "NotAllowedError") return null; // cancelled the picker
    throw new Error("The screen could not be shared. Try again, or take a screenshot and paste it.");
  }
  const video = document.createElement("video");
  try {
    video.muted = true;
    video.playsInline = true;
    video.srcObject = stream;
    await firstFrame(video);
    return await frameToFile(video, screenName());
  } catch {
    throw new Error("The screen could not be captured. Try again, or take a screenshot and paste it.");
  } finally {
    stopStream(stream);
    video.srcObject = null;
  }
}

export function describeCameraFailure(error: unknown): string {
  const name = error instanceof DOMException || error instanceof Error ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera access was refused. Allow the camera for this site in your browser's settings, then try again.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No camera was found. Connect one, or choose a picture instead.";
    case "NotReadableError":
      return "The camera is busy in another app. Close that app and try again.";
    default:
      return "The camera could not be started. Choose a picture instead.";
  }
}
