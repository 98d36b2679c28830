// Pictures can arrive anywhere on the page: pasted from the clipboard, or dropped outside the drop zone.
// A file drop the page does not take makes the browser open the file instead, ending the conversation.
import { useEffect, useState } from "react";

import { isImageFile } from "./imageFiles";

export function filesFrom(list: FileList | File[] | null | undefined): File[] {
  return list ? Array.from(list) : [];
}

function carriesFiles(event: DragEvent): boolean {
  return Array.from(event.dataTransfer?.types ?? []).includes("Files");
}

/** Listens on the whole document; returns whether files are being dragged over the page. */
export function usePageImageInput(onFiles: (files: File[]) => void): boolean {
  const [dragging, setDragging] = useState(false);

  useEffect(() => {
    let depth = 0; // dragenter/dragleave fire for every element crossed
    const onDragEnter = (event: DragEvent) => {
      if (!carriesFiles(event)) return;
      depth += 1;
      setDragging(true);
    };
    const onDragLeave = (event: DragEvent) => {
      if (!carriesFiles(event)) return;
      depth = Math.max(0, depth - 1);
      if (depth === 0) setDragging(false);
    };
    const onDragOver = (event: DragEvent) => {
      if (carriesFiles(event)) event.preventDefault(); // "this page takes the drop"
    };
    const onDrop = (event: DragEvent) => {
      depth = 0;
      setDragging(false);
      const dropped = filesFrom(event.dataTransfer?.files);
      if (dropped.length === 0) return;
      event.preventDefault();
      onFiles(dropped);
    };
    const onPaste = (event: ClipboardEvent) => {
      const pasted = filesFrom(event.clipboardData?.files).filter(isImageFile);
      if (pasted.length === 0) return; // pasting text into a field stays as it is
      event.preventDefault();
      onFiles(pasted);
    };
    const listeners = [["dragenter", onDragEnter], ["dragleave", onDragLeave], ["dragover", onDragOver],
                       ["drop", onDrop], ["paste", onPaste]] as const;
    for (const [name, listener] of listeners) document.addEventListener(name, listener as EventListener);
    return () => {
      for (const [name, listener] of listeners) document.removeEventListener(name, listener as EventListener);
    };
  }, [onFiles]);

  return dragging;
}
