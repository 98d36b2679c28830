// @vitest-environment node
// What the page shows for each state of the voice session, as a table.
import { describe, expect, it } from "vitest";

import type { Phase } from "../src/lib/voice/phase";
import { deriveStatus, isLive, type StatusInputs, type VoiceStatus } from "../src/lib/voice/status";

const live: StatusInputs = { phase: "connected", sdkStatus: "connected", isSpeaking: false, isMuted: false,
                             awaitingAgent: false };

type Row = [shown: VoiceStatus, inputs: Partial<StatusInputs>];

const CONNECTED: Row[] = [
  ["listening", {}],
  ["listening", { sdkStatus: "error" }], // an error the conversation survives
  ["connecting", { sdkStatus: "connecting" }],
  ["connecting", { sdkStatus: "connecting", isSpeaking: true, awaitingAgent: true, isMuted: true }],
  ["speaking", { isSpeaking: true }],
  ["speaking", { isSpeaking: true, awaitingAgent: true, isMuted: true }],
  ["thinking", { awaitingAgent: true }],
  ["thinking", { awaitingAgent: true, isMuted: true }],
  ["muted", { isMuted: true }],
];

describe("the status the page shows", () => {
  it.each(CONNECTED)("%s when connected with %o", (shown, inputs) => {
    expect(deriveStatus({ ...live, ...inputs })).toBe(shown);
  });

  const OTHERS: Exclude<Phase, "connected">[] = ["idle", "connecting", "reconnecting", "lost", "error"];
  it.each(OTHERS)("%s whatever the SDK says", (phase) => {
    for (const isSpeaking of [false, true]) {
      for (const awaitingAgent of [false, true]) {
        for (const isMuted of [false, true]) {
          for (const sdkStatus of ["connected", "connecting", "disconnected", "error"]) {
            expect(deriveStatus({ phase, sdkStatus, isSpeaking, awaitingAgent, isMuted })).toBe(phase);
          }
        }
      }
    }
  });

  it.each<[VoiceStatus, boolean]>([
    ["idle", false], ["connecting", false], ["listening", true], ["thinking", true], ["speaking", true],
    ["muted", true], ["reconnecting", false], ["lost", false], ["error", false],
  ])("%s is live: %s", (status, live) => {
    expect(isLive(status)).toBe(live);
  });
});
