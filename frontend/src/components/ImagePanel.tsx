import { useId, type ChangeEvent } from "react";

import type { SharedImage } from "../lib/useImageUploads";
import { filesFrom, usePageImageInput } from "../lib/usePageImageInput";
import { Thumbnail } from "./Thumbnail";

interface Props {
  images: SharedImage[];
  live: boolean;
  onFiles: (files: File[]) => void;
  onDismiss: (id: number) => void;
}

export function ImagePanel({ images, live, onFiles, onDismiss }: Props) {
  const dragging = usePageImageInput(onFiles);
  const pickerId = useId();
  const cameraId = useId();

  const fromInput = (event: ChangeEvent<HTMLInputElement>) => {
    const chosen = filesFrom(event.target.files);
    event.target.value = ""; // choosing the same file again still fires change
    if (chosen.length) onFiles(chosen);
  };

  return (
    <section className="images" aria-labelledby="images-heading">
      <h2 id="images-heading">Pictures</h2>
      <div className={`dropzone${dragging ? " dropzone-active" : ""}`} data-testid="dropzone">
        <p>{dragging ? "Drop to share" : "Drop pictures here, paste one, or"}</p>
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
