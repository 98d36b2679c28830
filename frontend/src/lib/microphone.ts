// Asking for the microphone before anything else, so a refusal gets a sentence, not a dead button.

export class MicrophoneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MicrophoneError";
  }
}

export function describeMicrophoneFailure(error: unknown): string {
  const name = error instanceof DOMException || error instanceof Error ? error.name : "";
  switch (name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return "Microphone access was refused. Allow the microphone for this site in your browser's settings, then press Start again.";
    case "NotFoundError":
    case "DevicesNotFoundError":
      return "No microphone was found. Connect one and press Start again.";
    case "NotReadableError":
    case "TrackStartError":
      return "The microphone is busy in another app. Close that app and press Start again.";
    default:
      return "The microphone could not be started. Check your browser's microphone settings and try again.";
  }
}

/** Resolves once the person has granted the microphone; the probe stream is released at once. */
export async function requestMicrophone(): Promise<void> {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new MicrophoneError(
      "This page cannot use the microphone here: open it over HTTPS (or on localhost) in a current browser.",
    );
  }
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    throw new MicrophoneError(describeMicrophoneFailure(error));
  }
  for (const track of stream.getTracks()) track.stop();
}
