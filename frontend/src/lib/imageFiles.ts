// Which files the page takes as pictures, however they arrive: picked, taken, dropped or pasted.

const ACCEPTED = /^image\//;

export function isImageFile(file: File): boolean {
  // Some phones hand over camera files without a type; the server checks the content anyway.
  return ACCEPTED.test(file.type) || file.type === "";
}
