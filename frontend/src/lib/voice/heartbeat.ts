// Liveness of a voice conversation, from the server's pings. The voice service pings every few seconds and the SDK
// answers; once two pings have come, a silence of every server event longer than the bound (8 s, or three ping
// intervals if the service pings more slowly, at most 30 s) means the connection is dead even though the socket
// never said so. `Heartbeat` is the reckoning (pure: the time is passed in); `watchLiveness` is the watchdog that
// runs it while a conversation is live and calls for a reconnect.

/** No server event for this long (once the server has shown it pings) and the connection counts as dead. */
export const LIVENESS_MS = 8_000;
/** How often the watchdog looks. */
export const WATCH_EVERY_MS = 1_000;

/** Liveness from the server's pings: the bound, and whether it applies yet. */
export class Heartbeat {
  private lastEventAt = 0;
  private lastPingAt = 0;
  private pings = 0;
  private longestGap = 0;

  /** A new conversation: nothing heard from it yet. */
  reset(now: number) {
    this.lastEventAt = now;
    this.lastPingAt = 0;
    this.pings = 0;
    this.longestGap = 0;
  }

  /** A server event (any: audio, words, a ping) of this type arrived. */
  event(type: unknown, now: number) {
    this.lastEventAt = now;
    if (type !== "ping") return;
    if (this.pings > 0) this.longestGap = Math.max(this.longestGap, now - this.lastPingAt);
    this.lastPingAt = now;
    this.pings += 1;
  }

  /** The page itself was away (frozen, throttled, hidden): the silence until now was its own, not the server's. */
  excuse(now: number) {
    this.lastEventAt = now;
  }

  /** A server that never pinged twice is not watched: there is nothing to tell silence from death by. */
  get armed(): boolean {
    return this.pings >= 2;
  }

  get bound(): number {
    return Math.min(30_000, Math.max(LIVENESS_MS, 3 * this.longestGap));
  }

  dead(now: number): boolean {
    return this.armed && now - this.lastEventAt > this.bound;
  }
}

/**
 * Watches a live conversation: `onDead` is called when the heartbeat says the connection is dead (looked at every
 * second) or the device goes offline. A page frozen or throttled (a background tab, a sleeping phone) or coming
 * back into view does not count its own absence against the server. Returns the function that stops watching.
 */
export function watchLiveness(heartbeat: Heartbeat, onDead: () => void): () => void {
  let lastTick = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - lastTick > 3 * WATCH_EVERY_MS) heartbeat.excuse(now);
    lastTick = now;
    if (heartbeat.dead(now)) onDead();
  }, WATCH_EVERY_MS);
  const offline = () => onDead();
  const visible = () => {
    if (document.visibilityState === "visible") heartbeat.excuse(Date.now());
  };
  window.addEventListener("offline", offline);
  document.addEventListener("visibilitychange", visible);
  return () => {
    clearInterval(timer);
    window.removeEventListener("offline", offline);
    document.removeEventListener("visibilitychange", visible);
  };
}
