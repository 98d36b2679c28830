// The pictures as a compact strip: what the agent sees, what is on its way, what failed, and how many fit.
import type { Picture } from "../lib/pictures";
import { Thumbnail } from "./Thumbnail";

interface Props {
  pictures: readonly Picture[];
  count: number;
  limit: number;
  message: string | null;
  isSeen: (picture: Picture) => boolean;
  /** Pictures go to the agent now: a call is live, or the person is typing. */
  live: boolean;
  typed: boolean;
  dragging: boolean;
  reactToPictures: boolean;
  onReactToPicturesChange: (value: boolean) => void;
  onRemove: (id: number) => void;
}

export function PictureStrip({ pictures, count, limit, message, isSeen, live, typed, dragging, reactToPictures,
                               onReactToPicturesChange, onRemove }: Props) {
  const failures = pictures.filter((picture) => picture.error);
  let hint = "Pictures you add now are sent when the conversation starts. Drop or paste one anywhere on the page.";
  if (live) {
    hint = reactToPictures
      ? "Share a picture and the agent looks at it at once. Drop or paste one anywhere."
      : `Share a picture: the agent sees it from your next ${typed ? "message" : "sentence"} on.`;
  }
  return (
    <section className={`pictures dropzone${dragging ? " dropzone-active" : ""}`} aria-labelledby="pictures-heading"
             data-testid="dropzone">
      <div className="pictures-head">
        <h2 id="pictures-heading">Pictures</h2>
        <span className={`pictures-count${count >= limit ? " pictures-full" : ""}`}>
          {count} of {limit} pictures
        </span>
        <label className="toggle">
          <input type="checkbox" checked={reactToPictures}
                 onChange={(event) => onReactToPicturesChange(event.target.checked)} />
          React to pictures
        </label>
      </div>
      {pictures.length > 0 ? (
        <ul className="thumbnails" aria-label="Shared pictures">
          {pictures.map((picture) => (
            <Thumbnail key={picture.id} picture={picture} seen={isSeen(picture)} onRemove={onRemove} />
          ))}
        </ul>
      ) : (
        <p className="hint">{hint}</p>
      )}
      {(message || failures.length > 0) && (
        <div className="picture-errors" role="alert">
          {message && <p>{message}</p>}
          {failures.map((picture) => (
            <p key={picture.id}>
              {picture.name}: {picture.error}
            </p>
          ))}
        </div>
      )}
      {dragging && <div className="drop-overlay" aria-hidden="true">Drop to share</div>}
    </section>
  );
}
