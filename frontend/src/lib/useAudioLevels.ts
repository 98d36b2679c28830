// The visualiser and the microphone meter, moved straight from the SDK's audio levels: one
// requestAnimationFrame loop while a conversation is live (none otherwise), writing CSS transforms, so
// nothing is laid out again and React does not render per frame. With prefers-reduced-motion nothing
// moves: the bars stay still and the meter only switches on while the person is heard.
import { useEffect, useRef, type RefObject } from "react";

import type { AudioLevels } from "./useVoiceSession";
import type { VoiceStatus } from "./voice/status";

export const BAR_COUNT = 5;
/** Which band each bar shows: the strongest (lowest) in the middle, the rest outwards, so the shape is even. */
const BAR_BANDS = [3, 1, 0, 2, 4];
const HEARD = 0.06; // meter level above which the person counts as heard

export function prefersReducedMotion(): boolean {
  return typeof window.matchMedia === "function" && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

/** A volume (0–1, the mean of the analyser's bins) as a level that looks right: speech sits around 0.05–0.25. */
export function levelOf(volume: number): number {
  return Math.min(1, Math.sqrt(Math.max(0, volume) * 4));
}

/** `count` band levels (0–1) from byte frequency data: the low third of the spectrum, where a voice is. */
export function bandsOf(data: Uint8Array, count: number = BAR_COUNT): number[] {
  const used = Math.floor(data.length / 3);
  if (used < count) return new Array<number>(count).fill(0);
  const width = Math.floor(used / count);
  const bands: number[] = [];
  for (let band = 0; band < count; band++) {
    let sum = 0;
    for (let index = band * width; index < (band + 1) * width; index++) sum += data[index];
    bands.push(Math.min(1, sum / width / 200));
  }
  return bands;
}

interface Targets {
  bars: RefObject<HTMLElement | null>;
  meter: RefObject<HTMLElement | null>;
}

export function useAudioLevels(live: boolean, status: VoiceStatus, levels: AudioLevels, { bars, meter }: Targets) {
  const current = useRef({ status, levels });
  current.current = { status, levels };

  useEffect(() => {
    const barElements = Array.from(bars.current?.children ?? []) as HTMLElement[];
    const meterElement = meter.current;
    const reset = () => {
      for (const bar of barElements) bar.style.transform = "";
      if (meterElement) {
        meterElement.style.transform = "";
        delete meterElement.dataset.heard;
      }
    };
    if (!live || typeof requestAnimationFrame !== "function") {
      reset();
      return;
    }
    const still = prefersReducedMotion();
    const smooth = new Array<number>(BAR_COUNT).fill(0);
    const written = new Array<string>(BAR_COUNT).fill("");
    let meterLevel = 0;
    let frame = 0;
    const step = (time: number) => {
      frame = requestAnimationFrame(step);
      const { status: now, levels: source } = current.current;
      const input = now === "muted" ? 0 : levelOf(source.getInputVolume());
      meterLevel = meterLevel * 0.6 + input * 0.4;
      if (meterElement) {
        const heard = meterLevel > HEARD ? "true" : "false";
        if (meterElement.dataset.heard !== heard) meterElement.dataset.heard = heard;
        if (!still) meterElement.style.transform = `scaleY(${meterLevel.toFixed(3)})`;
      }
      if (still) return;
      let targets: number[];
      if (now === "thinking") {
        // a slow wave across the bars: working on it
        targets = smooth.map((_, index) => 0.25 + 0.2 * Math.sin(time / 260 - index * 0.9));
      } else if (now === "speaking" || now === "listening") {
        const data = now === "speaking" ? source.getOutputByteFrequencyData() : source.getInputByteFrequencyData();
        const volume = now === "speaking" ? source.getOutputVolume() : source.getInputVolume();
        const bands = data.length ? bandsOf(data) : null;
        targets = bands ? BAR_BANDS.map((band) => bands[band]) : smooth.map(() => levelOf(volume));
      } else {
        targets = smooth.map(() => 0);
      }
      barElements.forEach((bar, index) => {
        smooth[index] = smooth[index] * 0.65 + targets[index] * 0.35;
        const transform = `scaleY(${(0.12 + 0.88 * smooth[index]).toFixed(2)})`;
        if (written[index] !== transform) bar.style.transform = written[index] = transform; // no work when still
      });
    };
    frame = requestAnimationFrame(step);
    return () => {
      cancelAnimationFrame(frame);
      reset();
    };
  }, [live, bars, meter]);
}
