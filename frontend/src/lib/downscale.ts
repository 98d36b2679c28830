// Shrinking photos in the browser: a phone's 12 MP photo becomes a few hundred KB before it leaves.
import { isHeic } from "./imageFiles";

export const MAX_EDGE = 1600;
export const JPEG_QUALITY = 0.85;
const PASS_THROUGH_TYPES = new Set(["image/jpeg", "image/png", "image/webp", "image/gif"]);
const PASS_THROUGH_BYTES = 1_500_000;

export interface Size {
  width: number;
  height: number;
}

/** The size that fits within `maxEdge` on its longer side, keeping the aspect ratio; never enlarges. */
export function fitWithin({ width, height }: Size, maxEdge: number = MAX_EDGE): Size {
  const longer = Math.max(width, height);
  if (longer <= maxEdge) return { width, height };
  const scale = maxEdge / longer;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

export interface PreparedImage {
  blob: Blob;
  fileName: string;
}

function jpegName(name: string): string {
  const base = name.replace(/\.[^./\\]+$/, "") || "image";
  return `${base}.jpg`;
}

/**
 * A file ready to upload: small images go as they are; big ones are redrawn at MAX_EDGE as JPEG,
 * upright (EXIF orientation applied by the browser). HEIC/HEIF goes as it is (the server converts it to
 * JPEG; only Safari could decode it here), as does anything else the browser cannot decode.
 */
export async function prepareImage(file: File, maxEdge: number = MAX_EDGE): Promise<PreparedImage> {
  const original = { blob: file as Blob, fileName: file.name || "image" };
  if (isHeic(file) || typeof createImageBitmap !== "function") return original;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return original;
  }
  try {
    const target = fitWithin({ width: bitmap.width, height: bitmap.height }, maxEdge);
    const small = target.width === bitmap.width && target.height === bitmap.height;
    if (small && PASS_THROUGH_TYPES.has(file.type) && file.size <= PASS_THROUGH_BYTES) return original;
    const canvas = document.createElement("canvas");
    canvas.width = target.width;
    canvas.height = target.height;
    const context = canvas.getContext("2d");
    if (!context) return original;
    context.fillStyle = "#ffffff"; // transparent PNGs become white, not black, as JPEG
    context.fillRect(0, 0, target.width, target.height);
    context.imageSmoothingQuality = "high";
    context.drawImage(bitmap, 0, 0, target.width, target.height);
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    if (!blob) return original;
    return { blob, fileName: jpegName(file.name) };
  } finally {
    bitmap.close();
  }
}
