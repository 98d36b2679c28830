// A setting the person chose, kept in this browser.
import { useCallback, useState } from "react";

function read(key: string, fallback: boolean): boolean {
  try {
    const stored = window.localStorage.getItem(key);
    return stored === null ? fallback : stored === "true";
  } catch {
    return fallback; // storage refused (private mode, blocked cookies): the default, every time
  }
}

export function useStoredFlag(key: string, fallback: boolean): [boolean, (value: boolean) => void] {
  const [value, setValue] = useState(() => read(key, fallback));
  const update = useCallback(
    (next: boolean) => {
      setValue(next);
      try {
        window.localStorage.setItem(key, String(next));
      } catch {
        // kept for this visit only
      }
    },
    [key],
  );
  return [value, update];
}
