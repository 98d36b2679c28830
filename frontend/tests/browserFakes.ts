// The browser APIs jsdom lacks or that would leave the machine: fetch, the microphone, XHR uploads.
import { vi } from "vitest";

export const SESSION = {
  session_id: "sess_abc123",
  session_key: "key_read_secret",
  upload_token: "tok_upload_secret",
  upload_token_expires_at: 2_000_000_000,
  agent_id: "agent_01",
  transport: "websocket",
  signed_url: "wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_01&conversation_signature=sig",
};

export interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** fetch that answers /v1/session with SESSION, remembering each call and its abort signal. */
export function installFetch(answer: (url: string, init?: RequestInit) => Promise<Response> =
  async () => jsonResponse(SESSION)) {
  const fetchMock = vi.fn(answer);
  vi.stubGlobal("fetch", fetchMock);
  return fetchMock;
}

export function installMicrophone(outcome: "granted" | "denied" | "missing" = "granted") {
  const stop = vi.fn();
  const getUserMedia = vi.fn(async () => {
    if (outcome === "denied") throw new DOMException("Permission denied", "NotAllowedError");
    if (outcome === "missing") throw new DOMException("Requested device not found", "NotFoundError");
    return { getTracks: () => [{ stop }] } as unknown as MediaStream;
  });
  Object.defineProperty(navigator, "mediaDevices", { value: { getUserMedia }, configurable: true });
  return { getUserMedia, stop };
}

export interface SentUpload {
  url: string;
  headers: Record<string, string>;
  form: FormData;
  progress: (loaded: number, total: number) => void;
  respond: (status: number, body: unknown) => void;
  aborted: boolean;
}

/** XMLHttpRequest that records what was sent and lets the test answer. */
export function installXhr() {
  const sent: SentUpload[] = [];
  class FakeXhr {
    upload: { onprogress: ((e: Partial<ProgressEvent>) => void) | null } = { onprogress: null };
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    onabort: (() => void) | null = null;
    status = 0;
    responseText = "";
    responseType = "";
    private readonly record: SentUpload = {
      url: "",
      headers: {},
      form: new FormData(),
      aborted: false,
      progress: (loaded, total) => this.upload.onprogress?.({ lengthComputable: true, loaded, total }),
      respond: (status, body) => {
        this.status = status;
        this.responseText = typeof body === "string" ? body : JSON.stringify(body);
        this.onload?.();
      },
    };
    open(_method: string, url: string) {
      this.record.url = url;
    }
    setRequestHeader(name: string, value: string) {
      this.record.headers[name] = value;
    }
    abort() {
      this.record.aborted = true;
      this.onabort?.();
    }
    send(form: FormData) {
      this.record.form = form;
      sent.push(this.record);
    }
  }
  vi.stubGlobal("XMLHttpRequest", FakeXhr);
  return sent;
}

export function uploaded(upload: SentUpload, imageId: string, url = `/v1/images/${imageId}?expires=1&sig=s`) {
  upload.respond(201, { image_id: imageId, url, session_id: upload.form.get("session_id"), expires_at: 2_000_000_000 });
}

export interface ApiCall {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/**
 * fetch for the proxy's JSON routes: /v1/session answers the next of `sessions` (the last one again when they run
 * out), DELETE /v1/images/{id} answers `onDelete` (200 with the count left by default). Every call is recorded.
 */
export function installApi({ sessions = [SESSION], onDelete }: {
  sessions?: Record<string, unknown>[];
  onDelete?: (call: ApiCall) => Response | Promise<Response>;
} = {}) {
  const calls: ApiCall[] = [];
  let sessionCount = 0;
  const fetchMock = installFetch(async (url, init) => {
    const call = { method: init?.method ?? "GET", url, headers: Object.fromEntries(new Headers(init?.headers)) };
    calls.push(call);
    if (url.startsWith("/v1/session")) {
      const session = sessions[Math.min(sessionCount, sessions.length - 1)];
      sessionCount += 1;
      return jsonResponse(session);
    }
    if (call.method === "DELETE" && url.startsWith("/v1/images/")) {
      if (onDelete) return onDelete(call);
      const imageId = decodeURIComponent(url.split("/")[3].split("?")[0]);
      return jsonResponse({ image_id: imageId, deleted: true, images: 0 });
    }
    return jsonResponse({ error: { message: "Not found.", type: "not_found" } }, 404);
  });
  return { calls, fetchMock };
}

/** A still camera or screen for jsdom: videos that play at once with a size, canvases that make JPEGs. */
export function installMediaCapture() {
  const stopped: string[] = [];
  const stream = (kind: string) => ({ getTracks: () => [{ stop: () => stopped.push(kind) }] }) as unknown as MediaStream;
  const getUserMedia = vi.fn(async (constraints: MediaStreamConstraints) =>
    stream(constraints.video ? "camera" : "microphone"));
  const getDisplayMedia = vi.fn(async () => stream("screen"));
  Object.defineProperty(navigator, "mediaDevices", { value: { getUserMedia, getDisplayMedia }, configurable: true });
  const restore = [
    stubProperty(HTMLMediaElement.prototype, "play", { value: () => Promise.resolve() }),
    stubProperty(HTMLMediaElement.prototype, "readyState", { get: () => 4 }),
    stubProperty(HTMLMediaElement.prototype, "srcObject", { get: () => null, set: () => undefined }),
    stubProperty(HTMLVideoElement.prototype, "videoWidth", { get: () => 3200 }),
    stubProperty(HTMLVideoElement.prototype, "videoHeight", { get: () => 1800 }),
    stubProperty(HTMLCanvasElement.prototype, "getContext", { value: () => ({ drawImage: () => undefined }) }),
    stubProperty(HTMLCanvasElement.prototype, "toBlob", {
      value(this: HTMLCanvasElement, callback: BlobCallback, type?: string) {
        const size = `${this.width}x${this.height}`;
        callback(new Blob([size], { type }));
      },
    }),
  ];
  return { getUserMedia, getDisplayMedia, stopped, restore: () => restore.forEach((undo) => undo()) };
}

function stubProperty(target: object, name: string, descriptor: PropertyDescriptor): () => void {
  const original = Object.getOwnPropertyDescriptor(target, name);
  Object.defineProperty(target, name, { configurable: true, ...descriptor });
  return () => {
    if (original) Object.defineProperty(target, name, original);
    else delete (target as Record<string, unknown>)[name];
  };
}
