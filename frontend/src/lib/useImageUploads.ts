// The images a person shares in one conversation: queued until there is a session, then downscaled
// and uploaded with the session's upload token, each with its own progress and error.
import { useCallback, useEffect, useRef, useState } from "react";

import { uploadImage } from "./api";
import { prepareImage } from "./downscale";

export type ImageState = "waiting" | "preparing" | "uploading" | "uploaded" | "failed";

export interface SharedImage {
  id: number;
  name: string;
  previewUrl: string;
  state: ImageState;
  progress: number;
  error?: string;
}

export interface UploadTarget {
  session_id: string;
  upload_token: string;
}

const ACCEPTED = /^image\//;

export function isImageFile(file: File): boolean {
  // Some phones hand over camera files without a type; the server checks the content anyway.
  return ACCEPTED.test(file.type) || file.type === "";
}

export function useImageUploads(target: UploadTarget | null) {
  const [images, setImages] = useState<SharedImage[]>([]);
  const files = useRef(new Map<number, File>());
  const started = useRef(new Set<number>());
  const inFlight = useRef(new Map<number, AbortController>());
  const previews = useRef(new Map<number, string>());
  const sessionOf = useRef(new Map<number, string>()); // which conversation each started upload went to
  const nextId = useRef(0);

  const update = useCallback((id: number, change: Partial<SharedImage>) => {
    setImages((current) => current.map((image) => (image.id === id ? { ...image, ...change } : image)));
  }, []);

  const start = useCallback(
    async (id: number, to: UploadTarget) => {
      const file = files.current.get(id);
      if (!file || started.current.has(id)) return;
      started.current.add(id);
      sessionOf.current.set(id, to.session_id);
      const controller = new AbortController();
      inFlight.current.set(id, controller);
      update(id, { state: "preparing", error: undefined });
      try {
        const prepared = await prepareImage(file);
        if (controller.signal.aborted) return;
        update(id, { state: "uploading", progress: 0 });
        await uploadImage({
          image: prepared.blob,
          fileName: prepared.fileName,
          sessionId: to.session_id,
          uploadToken: to.upload_token,
          signal: controller.signal,
          onProgress: (progress) => update(id, { progress }),
        });
        update(id, { state: "uploaded", progress: 1 });
        files.current.delete(id);
      } catch (error) {
        if (controller.signal.aborted) return;
        update(id, { state: "failed", error: error instanceof Error ? error.message : "The upload failed." });
      } finally {
        inFlight.current.delete(id);
      }
    },
    [update],
  );

  const addFiles = useCallback(
    (incoming: Iterable<File>) => {
      const added: SharedImage[] = [];
      for (const file of incoming) {
        const id = nextId.current++;
        const name = file.name || "Pasted image";
        if (!isImageFile(file)) {
          added.push({ id, name, previewUrl: "", state: "failed", progress: 0,
                       error: `${name} is not an image. Share a photo or a screenshot.` });
          continue;
        }
        const previewUrl = URL.createObjectURL(file);
        previews.current.set(id, previewUrl);
        files.current.set(id, file);
        added.push({ id, name, previewUrl, state: "waiting", progress: 0 });
      }
      setImages((current) => [...current, ...added]);
      if (target) for (const image of added) if (image.state === "waiting") void start(image.id, target);
    },
    [target, start],
  );

  const forget = useCallback((id: number) => {
    inFlight.current.get(id)?.abort();
    files.current.delete(id);
    sessionOf.current.delete(id);
    const preview = previews.current.get(id);
    if (preview) URL.revokeObjectURL(preview);
    previews.current.delete(id);
  }, []);

  const dismiss = useCallback(
    (id: number) => {
      forget(id);
      setImages((current) => current.filter((image) => image.id !== id));
    },
    [forget],
  );

  // A new conversation: what belonged to the previous one goes, what was waiting goes to the new one.
  useEffect(() => {
    if (!target) return;
    const stale = [...sessionOf.current].filter(([, session]) => session !== target.session_id).map(([id]) => id);
    for (const id of stale) forget(id);
    if (stale.length) setImages((current) => current.filter((image) => !stale.includes(image.id)));
    for (const [id] of files.current) if (!started.current.has(id)) void start(id, target);
  }, [target, start, forget]);

  useEffect(() => {
    const controllers = inFlight.current;
    const urls = previews.current;
    return () => {
      for (const controller of controllers.values()) controller.abort();
      for (const url of urls.values()) URL.revokeObjectURL(url);
      controllers.clear();
      urls.clear();
    };
  }, []);

  return { images, addFiles, dismiss };
}
