// The watchdog of a live voice conversation: the heartbeat's verdict, looked at every second, and the device
// going offline. (The heartbeat's own reckoning is in lib.test.ts.)
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import { Heartbeat, LIVENESS_MS, watchLiveness, WATCH_EVERY_MS } from "../src/lib/voice/heartbeat";

/** A heartbeat armed by two pings, the second at 2 s: dead once silent for more than LIVENESS_MS after it. */
function armed() {
  const heartbeat = new Heartbeat();
  heartbeat.reset(0);
  heartbeat.event("ping", 0);
  vi.advanceTimersByTime(2_000);
  heartbeat.event("ping", Date.now());
  return heartbeat;
}

let stop = () => {};
beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  stop();
  vi.useRealTimers();
});

describe("watchLiveness", () => {
  it("calls for a reconnect within a second of the silence passing the bound", () => {
    const heartbeat = armed();
    const onDead = vi.fn();
    stop = watchLiveness(heartbeat, onDead);
    vi.advanceTimersByTime(LIVENESS_MS);
    expect(onDead).not.toHaveBeenCalled();
    vi.advanceTimersByTime(WATCH_EVERY_MS);
    expect(onDead).toHaveBeenCalledTimes(1);
  });

  it("does not while the server keeps talking", () => {
    const heartbeat = armed();
    const onDead = vi.fn();
    stop = watchLiveness(heartbeat, onDead);
    for (let second = 0; second < 30; second++) {
      vi.advanceTimersByTime(1_000);
      if (second % 5 === 0) heartbeat.event("audio", Date.now());
    }
    expect(onDead).not.toHaveBeenCalled();
  });

  it("does not judge a server that has not shown it pings", () => {
    const heartbeat = new Heartbeat();
    heartbeat.reset(0);
    heartbeat.event("ping", 0);
    const onDead = vi.fn();
    stop = watchLiveness(heartbeat, onDead);
    vi.advanceTimersByTime(LIVENESS_MS * 4);
    expect(onDead).not.toHaveBeenCalled();
  });

  it("going offline is a dead connection at once", () => {
    const onDead = vi.fn();
    stop = watchLiveness(new Heartbeat(), onDead);
    window.dispatchEvent(new Event("offline"));
    expect(onDead).toHaveBeenCalledTimes(1);
  });

  it("a page frozen for a while counts its silence as its own, not the server's", () => {
    const heartbeat = armed();
    const onDead = vi.fn();
    stop = watchLiveness(heartbeat, onDead);
    vi.setSystemTime(Date.now() + 20_000); // asleep: no tick ran
    vi.advanceTimersByTime(WATCH_EVERY_MS);
    expect(onDead).not.toHaveBeenCalled();
    vi.advanceTimersByTime(LIVENESS_MS); // then silent for real
    expect(onDead).not.toHaveBeenCalled();
    vi.advanceTimersByTime(WATCH_EVERY_MS);
    expect(onDead).toHaveBeenCalledTimes(1);
  });

  it("a page coming back into view counts its silence as its own", () => {
    const heartbeat = armed();
    const onDead = vi.fn();
    stop = watchLiveness(heartbeat, onDead);
    vi.advanceTimersByTime(7_000);
    const visibility = vi.spyOn(document, "visibilityState", "get").mockReturnValue("visible");
    document.dispatchEvent(new Event("visibilitychange"));
    visibility.mockRestore();
    vi.advanceTimersByTime(LIVENESS_MS);
    expect(onDead).not.toHaveBeenCalled();
    vi.advanceTimersByTime(WATCH_EVERY_MS);
    expect(onDead).toHaveBeenCalledTimes(1);
  });

  it("stops watching when told", () => {
    const heartbeat = armed();
    const onDead = vi.fn();
    watchLiveness(heartbeat, onDead)();
    vi.advanceTimersByTime(LIVENESS_MS * 2);
    window.dispatchEvent(new Event("offline"));
    expect(onDead).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });
});
