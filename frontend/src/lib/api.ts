// The proxy's HTTP API, as the page uses it: a session to start a conversation, image uploads and removals.

import { plainWords, UNREACHABLE } from "./plainWords";

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
  /** The most pictures one conversation holds, when the server says (GLIMPSE_IMAGES_PER_CONVERSATION). */
  max_images?: number;
  /** No LLM is configured: the proxy answers chat turns with its built-in demo model, which does not see. */
  demo_model?: boolean;
  /** An ElevenLabs agent is configured on the server (a voice conversation can start). */
  voice?: boolean;
}

/** The session can open a voice conversation: the server has an ElevenLabs agent. */
/** Whether the server has voice: its `voice` field (a typed session mints no signed URL), else a way to reach it. */
export function hasVoice(session: GlimpseSession): boolean {
  return session.voice ?? Boolean(session.signed_url || session.conversation_token);
}

export interface UploadedImage {
  image_id: string;
  url: string;
  session_id: string;
  expires_at: number;
}

/** An error the person can read: the proxy's own message when it sent one (never naming a vendor). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const SERVER_BUSY = "The server is busy or restarting. Try again in a moment.";

const FALLBACK_MESSAGES: Record<number, string> = {
  401: "This upload is no longer allowed. End the conversation and start it again.",
  404: "The server does not know this conversation any more. Start the conversation again.",
  413: "That picture is too large for the server.",
  415: "That file is not a picture the server can read (try JPEG, PNG, WebP or HEIC).",
  429: "Too many requests or pictures for this conversation. Wait a moment and try again.",
  502: "The voice service did not answer. Try again in a moment.",
  503: SERVER_BUSY,
  504: "The voice service did not answer in time. Try again in a moment.",
};

/** The proxy's codes the page words itself: removing a picture makes room, which the server cannot know. */
const CODE_MESSAGES: Record<string, string> = {
  too_many_images: "This conversation already holds as many pictures as it can. Remove one to share another.",
  session_quota_exceeded: "These pictures fill this conversation's space. Remove one to share another.",
};

/** The message and code of the proxy's OpenAI-style error body; neither when the body is not one (a gateway's page,
 * a dropped connection). */
export function errorBody(body: string): { message?: string; code?: string } {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown; code?: unknown } };
    return {
      message: typeof parsed.error?.message === "string" ? parsed.error.message : undefined,
      code: typeof parsed.error?.code === "string" ? parsed.error.code : undefined,
    };
  } catch {
    return {};
  }
}

export function errorFromResponse(status: number, body: string): ApiError {
  const { message, code } = errorBody(body);
  const fallback = FALLBACK_MESSAGES[status] ?? (status >= 500
    ? "The server had a problem. Try again in a moment."
    : `The server refused the request (${status}).`);
  const words = (code && CODE_MESSAGES[code]) ?? plainWords(message, fallback);
  return new ApiError(words, status, code);
}

/** A new session; `voice: false` (typed conversations, and asking whether voice exists) mints no voice link. */
export async function fetchSession(transport: Transport, signal?: AbortSignal,
  { voice = true }: { voice?: boolean } = {}): Promise<GlimpseSession> {
  let response: Response;
  const query = voice ? `transport=${transport}` : `transport=${transport}&voice=false`;
  try {
    response = await fetch(`/v1/session?${query}`, { signal, headers: { Accept: "application/json" } });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(UNREACHABLE, 0);
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

export interface DeleteRequest {
  imageId: string;
  sessionId: string;
  uploadToken: string;
  signal?: AbortSignal;
}

/** DELETE /v1/images/{id}: the agent stops seeing the picture. Already gone (404) counts as done. */
export async function deleteImage({ imageId, sessionId, uploadToken, signal }: DeleteRequest): Promise<void> {
  let response: Response;
  try {
    response = await fetch(
      `/v1/images/${encodeURIComponent(imageId)}?session_id=${encodeURIComponent(sessionId)}`,
      { method: "DELETE", signal, headers: { "X-Upload-Token": uploadToken, Accept: "application/json" } },
    );
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError("Could not reach the server to remove the picture. Check your connection and try again.", 0);
  }
  if (response.ok || response.status === 404) return;
  throw errorFromResponse(response.status, await response.text());
}
