// The proxy's HTTP API, as the page uses it: a session to start a conversation, and image uploads.

export type Transport = "websocket" | "webrtc";

export interface GlimpseSession {
  session_id: string;
  /** Shown with the session id on every turn: without it the proxy gives the agent none of this session's pictures. */
  session_key: string;
  upload_token: string;
  upload_token_expires_at: number;
  agent_id: string | null;
  transport: Transport;
  signed_url?: string;
  conversation_token?: string;
  warning?: string;
}

export interface UploadedImage {
  image_id: string;
  url: string;
  session_id: string;
  expires_at: number;
}

/** An error the person can read: the proxy's own message when it sent one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const FALLBACK_MESSAGES: Record<number, string> = {
  401: "This upload is no longer allowed. Disconnect and start the conversation again.",
  404: "The server does not know this conversation any more. Start the conversation again.",
  413: "That image is too large for the server.",
  415: "That file is not an image the server can read (try JPEG, PNG or WebP).",
  429: "Too many requests or images for this conversation. Wait a moment and try again.",
  502: "The voice service did not answer. Try again in a moment.",
  503: "The server is busy or restarting. Try again in a moment.",
};

export function errorFromResponse(status: number, body: string): ApiError {
  let message: string | undefined;
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } };
    if (typeof parsed.error?.message === "string") message = parsed.error.message;
  } catch {
    // not JSON: a gateway page or a dropped connection; use the fallback below
  }
  return new ApiError(message ?? FALLBACK_MESSAGES[status] ?? `The server answered ${status}.`, status);
}

export async function fetchSession(transport: Transport, signal?: AbortSignal): Promise<GlimpseSession> {
  let response: Response;
  try {
    response = await fetch(`/v1/session?transport=${transport}`, { signal, headers: { Accept: "application/json" } });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError("Could not reach the Glimpse server. Check your connection and try again.", 0);
  }
  const text = await response.text();
  if (!response.ok) throw errorFromResponse(response.status, text);
  return JSON.parse(text) as GlimpseSession;
}

export interface UploadRequest {
  image: Blob;
  fileName: string;
  sessionId: string;
  uploadToken: string;
  onProgress?: (fraction: number) => void;
  signal?: AbortSignal;
}

/** POST /v1/images with XMLHttpRequest, the one browser API that reports upload progress. */
export function uploadImage({ image, fileName, sessionId, uploadToken, onProgress, signal }: UploadRequest):
  Promise<UploadedImage> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    const form = new FormData();
    form.append("session_id", sessionId);
    form.append("file", image, fileName);
    request.open("POST", "/v1/images");
    request.setRequestHeader("X-Upload-Token", uploadToken);
    request.responseType = "text";
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress?.(event.loaded / event.total);
    };
    request.onload = () => {
      if (request.status >= 200 && request.status < 300) {
        onProgress?.(1);
        resolve(JSON.parse(request.responseText) as UploadedImage);
      } else {
        reject(errorFromResponse(request.status, request.responseText));
      }
    };
    request.onerror = () => reject(new ApiError("The upload was interrupted. Check your connection and try again.", 0));
    request.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
    signal?.addEventListener("abort", () => request.abort(), { once: true });
    request.send(form);
  });
}
