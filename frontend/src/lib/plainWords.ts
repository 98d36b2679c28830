// Errors in plain words: what the person can do, never which company's service failed or a raw error code.

const VENDOR = /eleven\s*labs|\bxi-|openai|gemini|anthropic|livekit|google|azure|gpt-|claude/i;
// A message meant for a programmer: an error class, a status line, a stack, JSON, an error code, an API's field or
// the proxy's own terms (its upstream LLM, its bearer key).
const TECHNICAL =
  /\b[a-z]+_[a-z_]+\b|[{}[\]<>`]|\bcode \d{3,4}\b|\b(?:TypeError|Error|Exception):|\bat \S+:\d+|\b[Uu]pstream\b|\bLLMs?\b|\b[Bb]earer\b|\b[Ee]ndpoint\b|\breplicas?\b/;

/** `message` when it is fit to show as it is, otherwise `fallback`. */
export function plainWords(message: string | null | undefined, fallback: string): string {
  const text = message?.trim();
  if (!text || VENDOR.test(text) || TECHNICAL.test(text) || text.length > 240) return fallback;
  return text;
}

export const NO_ANSWER = "The agent didn't answer — try again.";
export const CONNECTION_LOST = "The connection was lost. Check your connection, then press Try again.";
export const NOT_SET_UP = "Voice is not set up on this server yet. Type your message instead.";
export const UNREACHABLE = "Could not reach the Glimpse server. Check your connection and try again.";

/** What the voice service's own errors (SDK onError, a close with an error) mean to the person. */
export function describeVoiceFailure(message: string | undefined, { duringTurn }: { duringTurn: boolean }): string {
  const text = (message ?? "").toLowerCase();
  if (/llm|generation|timeout|timed out/.test(text) || duringTurn) return NO_ANSWER;
  if (/max[_ ]duration|time limit/.test(text)) return "The conversation reached its time limit. Start a new one to go on.";
  if (/quota|limit|busy|capacity|rate/.test(text)) return "The voice service is busy. Try again in a moment.";
  if (/override|auth|signature|permission|forbidden|invalid/.test(text)) {
    return "The voice agent refused the conversation. Try again; if it keeps happening, tell whoever runs this page.";
  }
  return "The voice connection was lost. Press Try again to reconnect.";
}
