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

/** Set when a session of this server had voice: the page then opens with Start conversation at once. */
export const VOICE_AVAILABLE_KEY = "glimpse.voiceAvailable";

/** True when this server had voice last time; null when the page has to ask (it never remembers "no voice",
 * so an agent configured since shows at the next load). */
export function rememberedVoice(): true | null {
  try {
    return window.localStorage.getItem(VOICE_AVAILABLE_KEY) === "true" ? true : null;
  } catch {
    return null;
  }
}

export function rememberVoice(available: boolean) {
  try {
    if (available) window.localStorage.setItem(VOICE_AVAILABLE_KEY, "true");
    else window.localStorage.removeItem(VOICE_AVAILABLE_KEY);
  } catch {
    // asked again at the next load
  }
}
