// The pictures a person shows the agent, as objects that outlive one conversation.
//
// - A picture is downscaled once, when it is added (one at a time: eight 12 MP photos decoded together would
//   exhaust a phone), and the page keeps the result: a new session (End → Start, a reconnect) gets every kept
//   picture uploaded again, in the order they were added.
// - Uploads go one at a time, in order, with the session's upload token.
// - A conversation holds at most `limit` pictures (the proxy's GLIMPSE_IMAGES_PER_CONVERSATION, 8 by default):
//   files past it are refused when they are added, never by the server at random.
// - Removing a picture the agent has deletes it on the server (DELETE /v1/images/{id}); already gone is gone.
import { ApiError, deleteImage, uploadImage } from "./api";
import { prepareImage, type PreparedImage } from "./downscale";
import { isHeic, isImageFile } from "./imageFiles";

export const DEFAULT_PICTURE_LIMIT = 8;

export type PictureState = "waiting" | "preparing" | "queued" | "uploading" | "uploaded" | "removing" | "failed";

export interface Picture {
  readonly id: number;
  readonly name: string;
  /** What the thumbnail shows: the local copy, or for HEIC (which browsers cannot draw) the server's JPEG once
   * there is one; "" shows a neutral placeholder. */
  readonly previewUrl: string;
  readonly state: PictureState;
  readonly progress: number;
  readonly error?: string;
  /** The voice turn counter when its upload to the current conversation completed. */
  readonly uploadedTurn?: number;
}

export interface PicturesSnapshot {
  readonly pictures: readonly Picture[];
  readonly limit: number;
  /** Pictures that hold (or will hold) a place in the conversation: "3 of 8". */
  readonly count: number;
  /** Why files were not taken (over the limit, not a picture); null when all were. */
  readonly message: string | null;
}

export interface UploadTarget {
  session_id: string;
  upload_token: string;
}

interface Entry {
  picture: Picture;
  file: File;
  prepared: Promise<PreparedImage>;
  localUrl: string;
  /** Where it is on the server, while it is, and the turn its upload completed at. */
  remote?: { sessionId: string; imageId: string; token: string; turn: number };
  /** The session an upload failed for: tried again with the next session, not in a loop with this one. */
  failedFor?: string;
  /** The server will never take it (not a picture it can read, too large). */
  permanent?: boolean;
  everUploaded: boolean;
  controller?: AbortController;
}

const PERMANENT_STATUSES = new Set([400, 413, 415]);
const ROOM_CODES = new Set(["too_many_images", "session_quota_exceeded"]);

function limitMessage(limit: number, left: number): string {
  const what = left === 1 ? "1 picture was" : `${left} pictures were`;
  return `A conversation holds up to ${limit} pictures, so ${what} not added. Remove one to make room.`;
}

export class PictureStore {
  /** Called when a picture first reaches the agent's side (its first 201), not when it is uploaded again. */
  onFirstUpload: (() => void) | null = null;
  /** The voice turn counter, stamped on each completed upload. */
  currentTurn: () => number = () => 0;

  private entries: Entry[] = [];
  private target: UploadTarget | null = null;
  private busy = false;
  private released = false;
  private nextId = 0;
  private limit = DEFAULT_PICTURE_LIMIT;
  private preparing: Promise<unknown> = Promise.resolve();
  private snapshot: PicturesSnapshot = { pictures: [], limit: DEFAULT_PICTURE_LIMIT, count: 0, message: null };
  private readonly listeners = new Set<() => void>();

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  getSnapshot = () => this.snapshot;

  /** Pictures that hold (or will hold) a place in the conversation. */
  get count(): number {
    return this.entries.filter((entry) => !entry.permanent).length;
  }

  setLimit(limit: number | undefined) {
    const next = limit && limit > 0 ? Math.floor(limit) : DEFAULT_PICTURE_LIMIT;
    if (next === this.limit) return;
    this.limit = next;
    this.emit();
  }

  add = (files: Iterable<File>) => {
    const problems: string[] = [];
    let over = 0;
    for (const file of files) {
      const name = file.name || "Pasted picture";
      if (!isImageFile(file)) {
        problems.push(`${name} is not a picture. Share a photo or a screenshot.`);
        continue;
      }
      if (this.count >= this.limit) {
        over += 1;
        continue;
      }
      const localUrl = isHeic(file) ? "" : URL.createObjectURL(file);
      // One downscale at a time, started now: by the time there is a session, the pictures are ready.
      const prepared = this.preparing.then(() => prepareImage(file));
      this.preparing = prepared.catch(() => undefined);
      const entry: Entry = {
        file, prepared, localUrl, everUploaded: false,
        picture: { id: this.nextId++, name, previewUrl: localUrl, state: this.target ? "queued" : "waiting",
                   progress: 0 },
      };
      this.entries.push(entry);
      void prepared.then((ready) => this.showSmaller(entry, ready), () => undefined);
    }
    if (over) problems.push(limitMessage(this.limit, over));
    this.emit(problems.length ? problems.join(" ") : null);
    void this.pump();
  };

  /** The conversation pictures go to, or null between conversations. A new one gets every picture again; the one
   * they are already in (typing set aside, then taken up again) has them still. */
  setTarget(target: UploadTarget | null) {
    if (target?.session_id === this.target?.session_id) {
      this.target = target;
      return;
    }
    this.target = target;
    for (const entry of this.entries) {
      if (entry.permanent || entry.picture.state === "removing") continue;
      entry.controller?.abort();
      entry.controller = undefined;
      if (target && entry.remote?.sessionId === target.session_id) {
        entry.picture = { ...entry.picture, state: "uploaded", progress: 1, error: undefined,
                          uploadedTurn: entry.remote.turn };
        continue;
      }
      entry.picture = { ...entry.picture, state: target ? "queued" : "waiting", progress: 0, error: undefined,
                        uploadedTurn: undefined };
    }
    this.emit();
    void this.pump();
  }

  remove = async (id: number) => {
    const entry = this.entries.find((candidate) => candidate.picture.id === id);
    if (!entry || entry.picture.state === "removing") return;
    // Its bytes all sent, the server is storing it: aborting now would leave it with the agent and no id to delete
    // it by. The upload finishes out of sight and is deleted at once (see `upload`).
    const sentWhole = entry.picture.state === "uploading" && (entry.picture.progress ?? 0) >= 1;
    if (!sentWhole) entry.controller?.abort();
    entry.controller = undefined;
    const remote = entry.remote;
    if (remote && remote.sessionId === this.target?.session_id && entry.picture.state === "uploaded") {
      this.patch(entry, { state: "removing", error: undefined });
      try {
        await deleteImage({ imageId: remote.imageId, sessionId: remote.sessionId, uploadToken: remote.token });
      } catch (error) {
        if (this.entries.includes(entry)) {
          this.patch(entry, { state: "uploaded",
                              error: error instanceof Error ? error.message : "The picture could not be removed." });
        }
        return;
      }
    } else if (remote) {
      // A copy in a conversation that is over: remove it too, without making the person wait.
      deleteImage({ imageId: remote.imageId, sessionId: remote.sessionId, uploadToken: remote.token })
        .catch(() => undefined);
    }
    this.entries = this.entries.filter((candidate) => candidate !== entry);
    if (entry.localUrl) URL.revokeObjectURL(entry.localUrl);
    this.emit(null);
    void this.pump();
  };

  /**
   * Resolves once every picture is in the session `sessionId` (or has failed for it, or is on its way out): a typed
   * message waits for it, so the pictures shown before it reach the agent with it. Rejects when `signal` aborts.
   */
  settledFor = (sessionId: string, signal?: AbortSignal): Promise<void> => {
    const settled = () => this.entries.every((entry) => entry.permanent || entry.picture.state === "removing"
      || entry.remote?.sessionId === sessionId || entry.failedFor === sessionId);
    if (settled()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const stop = () => {
        unsubscribe();
        signal?.removeEventListener("abort", aborted);
      };
      const aborted = () => {
        stop();
        reject(new DOMException("Aborted", "AbortError"));
      };
      const unsubscribe = this.subscribe(() => {
        if (!settled()) return;
        stop();
        resolve();
      });
      if (signal?.aborted) aborted();
      else signal?.addEventListener("abort", aborted, { once: true });
    });
  };

  /** Leaving the page: uploads under way stop, nothing more is sent, and every preview is released. */
  release() {
    this.released = true;
    for (const entry of this.entries) {
      entry.controller?.abort();
      entry.controller = undefined;
      if (entry.localUrl) URL.revokeObjectURL(entry.localUrl);
    }
  }

  /** Mounted again (StrictMode's rehearsal of an unmount): carry on. */
  revive() {
    this.released = false;
    void this.pump();
  }

  /** The thumbnail shows the downscaled copy: eight 12 MP photos decoded for thumbnails would weigh on a phone. */
  private showSmaller(entry: Entry, ready: PreparedImage) {
    if (ready.blob === entry.file || !entry.localUrl || this.released || !this.entries.includes(entry)) return;
    URL.revokeObjectURL(entry.localUrl);
    entry.localUrl = URL.createObjectURL(ready.blob);
    this.patch(entry, { previewUrl: entry.localUrl });
  }

  private emit(message: string | null = this.snapshot.message) {
    this.snapshot = { pictures: this.entries.map((entry) => entry.picture), limit: this.limit, count: this.count,
                      message };
    for (const listener of this.listeners) listener();
  }

  private patch(entry: Entry, change: Partial<Picture>) {
    entry.picture = { ...entry.picture, ...change };
    this.emit();
  }

  private needsUpload(entry: Entry, target: UploadTarget): boolean {
    return !entry.permanent && entry.picture.state !== "removing" && entry.remote?.sessionId !== target.session_id
      && entry.failedFor !== target.session_id;
  }

  private async pump() {
    if (this.busy || this.released || !this.target) return;
    const target = this.target;
    const entry = this.entries.find((candidate) => this.needsUpload(candidate, target));
    if (!entry) return;
    this.busy = true;
    try {
      await this.upload(entry, target);
    } finally {
      this.busy = false;
    }
    void this.pump();
  }

  private async upload(entry: Entry, target: UploadTarget) {
    const controller = new AbortController();
    entry.controller = controller;
    try {
      this.patch(entry, { state: "preparing", progress: 0, error: undefined });
      const prepared = await entry.prepared;
      if (controller.signal.aborted) return;
      this.patch(entry, { state: "uploading" });
      const uploaded = await uploadImage({
        image: prepared.blob,
        fileName: prepared.fileName,
        sessionId: target.session_id,
        uploadToken: target.upload_token,
        signal: controller.signal,
        onProgress: (progress) => this.patch(entry, { progress }),
      });
      if (controller.signal.aborted) return;
      if (!this.entries.includes(entry)) {  // removed while the server was storing it
        deleteImage({ imageId: uploaded.image_id, sessionId: target.session_id, uploadToken: target.upload_token })
          .catch(() => undefined);
        return;
      }
      const turn = this.currentTurn();
      entry.remote = { sessionId: target.session_id, imageId: uploaded.image_id, token: target.upload_token, turn };
      entry.failedFor = undefined;
      const first = !entry.everUploaded;
      entry.everUploaded = true;
      this.patch(entry, { state: "uploaded", progress: 1, uploadedTurn: turn,
                          previewUrl: entry.localUrl || uploaded.url || "" });
      if (first) {
        try {
          performance.mark("glimpse:picture-shared");
        } catch {
          // a measurement aid only
        }
        this.onFirstUpload?.();
      }
    } catch (error) {
      if (controller.signal.aborted || !this.entries.includes(entry)) return;
      entry.failedFor = target.session_id;
      entry.permanent = error instanceof ApiError && PERMANENT_STATUSES.has(error.status)
        && !ROOM_CODES.has(error.code ?? "");
      this.patch(entry, { state: "failed",
                          error: error instanceof ApiError ? error.message : "The picture could not be sent. Try again." });
    } finally {
      if (entry.controller === controller) entry.controller = undefined;
    }
  }
}
