// The images a person shares in one conversation: queued until there is a session, then downscaled
// and uploaded with the session's upload token, each with its own progress and error.
import { useCallback, useEffect, useRef, useState } from "react";

import { uploadImage } from "./api";
import { prepareImage } from "./downscale";
import { isImageFile } from "./imageFiles";

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

/** A picture the hook took; a file refused as not an image is only shown, never kept. */
interface Upload {
  file?: File; // until it is uploaded
  started: boolean;
  controller?: AbortController; // while it is being prepared and sent
  previewUrl: string;
  sessionId?: string; // the conversation it went to, once started
}

export function useImageUploads(target: UploadTarget | null) {
  const [images, setImages] = useState<SharedImage[]>([]);
  const uploads = useRef(new Map<number, Upload>());
  const nextId = useRef(0);

  const update = useCallback((id: number, change: Partial<SharedImage>) => {
    setImages((current) => current.map((image) => (image.id === id ? { ...image, ...change } : image)));
  }, []);

  const start = useCallback(
    async (id: number, to: UploadTarget) => {
      const upload = uploads.current.get(id);
      if (!upload?.file || upload.started) return;
      const file = upload.file;
      upload.started = true;
      upload.sessionId = to.session_id;
      const controller = new AbortController();
      upload.controller = controller;
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
        upload.file = undefined;
      } catch (error) {
        if (controller.signal.aborted) return;
        update(id, { state: "failed", error: error instanceof Error ? error.message : "The upload failed." });
      } finally {
        upload.controller = undefined;
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
        uploads.current.set(id, { file, started: false, previewUrl });
        added.push({ id, name, previewUrl, state: "waiting", progress: 0 });
      }
      setImages((current) => [...current, ...added]);
      if (target) for (const image of added) if (image.state === "waiting") void start(image.id, target);
    },
    [target, start],
  );

  const forget = useCallback((id: number) => {
    const upload = uploads.current.get(id);
    if (!upload) return;
    upload.controller?.abort();
    URL.revokeObjectURL(upload.previewUrl);
    uploads.current.delete(id);
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
    const stale = [...uploads.current]
      .filter(([, upload]) => upload.started && upload.sessionId !== target.session_id)
      .map(([id]) => id);
    for (const id of stale) forget(id);
    if (stale.length) setImages((current) => current.filter((image) => !stale.includes(image.id)));
    for (const [id, upload] of uploads.current) if (!upload.started) void start(id, target);
  }, [target, start, forget]);

  useEffect(() => {
    const all = uploads.current;
    return () => {
      for (const upload of all.values()) {
        upload.controller?.abort();
        URL.revokeObjectURL(upload.previewUrl);
      }
    };
  }, []);

  return { images, addFiles, dismiss };
}
