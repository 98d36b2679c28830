import { useEffect, useId, useState, type ChangeEvent, type DragEvent } from "react";

import type { SharedImage } from "../lib/useImageUploads";
import { Thumbnail } from "./Thumbnail";

interface Props {
  images: SharedImage[];
  live: boolean;
  onFiles: (files: File[]) => void;
  onDismiss: (id: number) => void;
}

function filesFrom(list: FileList | null | undefined): File[] {
  return list ? Array.from(list) : [];
}

export function ImagePanel({ images, live, onFiles, onDismiss }: Props) {
  const [dragging, setDragging] = useState(false);
  const pickerId = useId();
  const cameraId = useId();

  // Paste anywhere on the page: a screenshot from the clipboard is the quickest way to share one.
  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const pasted = filesFrom(event.clipboardData?.files).filter((file) => file.type.startsWith("image/"));
      if (pasted.length === 0) return;
      event.preventDefault();
      onFiles(pasted);
    };
    document.addEventListener("paste", onPaste);
    return () => document.removeEventListener("paste", onPaste);
  }, [onFiles]);

  const fromInput = (event: ChangeEvent<HTMLInputElement>) => {
    const chosen = filesFrom(event.target.files);
    event.target.value = ""; // choosing the same file again still fires change
    if (chosen.length) onFiles(chosen);
  };
  const onDrop = (event: DragEvent<HTMLElement>) => {
    event.preventDefault();
    setDragging(false);
    const dropped = filesFrom(event.dataTransfer?.files);
    if (dropped.length) onFiles(dropped);
  };
  const onDragOver = (event: DragEvent<HTMLElement>) => {
    event.preventDefault();
    if (!dragging) setDragging(true);
  };

  return (
    <section className="images" aria-labelledby="images-heading">
      <h2 id="images-heading">Pictures</h2>
      <div
        className={`dropzone${dragging ? " dropzone-active" : ""}`}
        data-testid="dropzone"
        onDragOver={onDragOver}
        onDragEnter={onDragOver}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
      >
        <p>
          Drop pictures here, paste one, or
        </p>
        <div className="dropzone-buttons">
          <label htmlFor={pickerId} className="button button-quiet">
            Choose pictures
          </label>
          <input id={pickerId} className="visually-hidden" type="file" accept="image/*" multiple
                 onChange={fromInput} data-testid="image-picker" />
          {/* Phones only: where the pointer is a mouse, the whole option (label and input) is hidden. */}
          <span className="camera-option">
            <label htmlFor={cameraId} className="button button-quiet">
              Take a photo
            </label>
            <input id={cameraId} className="visually-hidden" type="file" accept="image/*" capture="environment"
                   onChange={fromInput} />
          </span>
        </div>
        <p className="hint">
          {live
            ? "The agent sees a picture from your next sentence on."
            : "Pictures you add now are sent when the conversation starts."}
        </p>
      </div>
      {images.length > 0 && (
        <ul className="thumbnails" aria-label="Shared pictures">
          {images.map((image) => (
            <Thumbnail key={image.id} image={image} onDismiss={onDismiss} />
          ))}
        </ul>
      )}
    </section>
  );
}
