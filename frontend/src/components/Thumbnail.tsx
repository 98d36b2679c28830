import { useState } from "react";

import type { Picture } from "../lib/pictures";
import { Icon, type IconName } from "./Icon";

/** A word on the tile, and the sentence a screen reader hears after the picture's name. */
function describe(picture: Picture, seen: boolean): { short: string; long: string; icon?: IconName } {
  switch (picture.state) {
    case "waiting":
      return { short: "Waiting", long: "sent when the conversation starts", icon: "clock" };
    case "preparing":
    case "queued":
      return { short: "Queued", long: "waiting to be sent", icon: "clock" };
    case "uploading":
      return { short: `${Math.round(picture.progress * 100)}%`, long: "being sent" };
    case "uploaded":
      return seen
        ? { short: "Seen", long: "the agent can see it", icon: "eye" }
        : { short: "Sent", long: "sent, the agent has not looked at it yet", icon: "check" };
    case "removing":
      return { short: "Removing", long: "being removed" };
    case "failed":
      return { short: "Not sent", long: "not sent", icon: "alert" };
  }
}

interface Props {
  picture: Picture;
  seen: boolean;
  onRemove: (id: number) => void;
}

export function Thumbnail({ picture, seen, onRemove }: Props) {
  const [broken, setBroken] = useState<string | null>(null);
  const { short, long, icon } = describe(picture, seen);
  const percent = Math.round(picture.progress * 100);
  const src = picture.previewUrl && picture.previewUrl !== broken ? picture.previewUrl : "";
  return (
    <li className={`thumbnail thumbnail-${picture.state}${seen ? " thumbnail-seen" : ""}`} data-state={picture.state}
        data-seen={seen ? "true" : "false"}>
      {src ? (
        <img src={src} alt={picture.name} decoding="async" onError={() => setBroken(src)} />
      ) : (
        // HEIC before the server's JPEG exists, or a file the browser cannot draw: a neutral frame, not a broken glyph.
        <div className="thumbnail-placeholder" role="img" aria-label={picture.name}>
          <Icon name="image" />
        </div>
      )}
      <span className="thumbnail-state">
        {icon && <Icon name={icon} />}
        {short}
        <span className="visually-hidden">: {long}</span>
      </span>
      {picture.state === "uploading" && (
        <progress max={100} value={percent} aria-label={`Uploading ${picture.name}`}>
          {percent}%
        </progress>
      )}
      <button type="button" className="thumbnail-remove" aria-label={`Remove picture ${picture.name}`}
              title="Remove picture" disabled={picture.state === "removing"} onClick={() => onRemove(picture.id)}>
        <Icon name="close" />
      </button>
    </li>
  );
}
