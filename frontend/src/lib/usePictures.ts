// The page's pictures as React state: one PictureStore for the page's lifetime, pointed at the live session.
import { useEffect, useState, useSyncExternalStore } from "react";

import { PictureStore, type UploadTarget } from "./pictures";

interface Options {
  /** The most pictures the session holds, when the server says. */
  limit?: number;
  currentTurn: () => number;
  onFirstUpload: () => void;
}

export function usePictures(target: UploadTarget | null, { limit, currentTurn, onFirstUpload }: Options) {
  const [store] = useState(() => new PictureStore());
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot);
  store.currentTurn = currentTurn;
  store.onFirstUpload = onFirstUpload;

  const sessionId = target?.session_id;
  const token = target?.upload_token;
  useEffect(() => {
    store.setTarget(sessionId && token ? { session_id: sessionId, upload_token: token } : null);
  }, [store, sessionId, token]);
  useEffect(() => store.setLimit(limit), [store, limit]);
  useEffect(() => {
    store.revive();
    return () => store.release();
  }, [store]);

  const busy = snapshot.pictures.some((picture) =>
    picture.state === "preparing" || picture.state === "queued" || picture.state === "uploading");
  return { ...snapshot, busy, add: store.add, remove: store.remove, settledFor: store.settledFor };
}
