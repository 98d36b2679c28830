// Which files the page takes as pictures, however they arrive: picked, taken, dropped, pasted or captured.

const ACCEPTED = /^image\//;
const HEIC_TYPES = /^image\/hei[cf](-sequence)?$/;
const HEIC_NAME = /\.hei[cf]$/i;

/** What the picker offers: every image, and HEIC/HEIF by name for systems that give them no image type. */
export const PICKER_ACCEPT = "image/*,.heic,.heif";

/** An Apple HEIC/HEIF photo: most browsers cannot draw one, the server converts it to JPEG. */
export function isHeic(file: File): boolean {
  return HEIC_TYPES.test(file.type) || HEIC_NAME.test(file.name);
}

export function isImageFile(file: File): boolean {
  // Some phones hand over camera files without a type; the server checks the content anyway.
  return ACCEPTED.test(file.type) || file.type === "" || isHeic(file);
}
