import type { SharedImage } from "../lib/useImageUploads";

const STATE_TEXT: Record<SharedImage["state"], string> = {
  waiting: "Waiting for the conversation",
  preparing: "Preparing…",
  uploading: "Uploading",
  uploaded: "Shared with the agent",
  failed: "Not shared",
};

export function Thumbnail({ image, onDismiss }: { image: SharedImage; onDismiss: (id: number) => void }) {
  const percent = Math.round(image.progress * 100);
  return (
    <li className={`thumbnail thumbnail-${image.state}`} data-state={image.state}>
      {image.previewUrl ? (
        <img src={image.previewUrl} alt={image.name} />
      ) : (
        <div className="thumbnail-placeholder" aria-hidden="true">?</div>
      )}
      <div className="thumbnail-info">
        <span className="thumbnail-name">{image.name}</span>
        {image.state === "uploading" ? (
          <progress max={100} value={percent} aria-label={`Uploading ${image.name}`}>
            {percent}%
          </progress>
        ) : (
          <span className="thumbnail-state">{STATE_TEXT[image.state]}</span>
        )}
        {image.error && (
          <span className="thumbnail-error" role="alert">
            {image.error}
          </span>
        )}
      </div>
      {image.state === "failed" && (
        <button type="button" className="button-icon" aria-label={`Dismiss ${image.name}`}
                onClick={() => onDismiss(image.id)}>
          ×
        </button>
      )}
    </li>
  );
}
