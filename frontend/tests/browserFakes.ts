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
